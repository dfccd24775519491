package queue

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// List returns one page of jobs matching opts, newest first, and the
// cursor of the next page ("" after the last). Tenant "" lists every
// tenant's jobs (an admin). A bad state, limit or cursor gives
// CodeInvalidArgument naming the field.
func (s *Store) List(ctx context.Context, opts ListOptions) ([]*greenq.Job, string, error) {
	if opts.State != "" && !opts.State.Valid() {
		return nil, "", greenq.Invalid("state", "%q is not one of pending, planned, released, running, succeeded, failed, cancelled, expired", opts.State)
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, "", greenq.Invalid("limit", "must be between 1 and %d, got %d", MaxListLimit, limit)
	}
	if opts.Cursor != "" && !validID(opts.Cursor) {
		return nil, "", greenq.Invalid("cursor", "is not a cursor this server returned")
	}
	key, err := s.listIndex(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	upper := "+"
	if opts.Cursor != "" {
		upper = "(" + opts.Cursor
	}
	batch := int64(max(limit*2, 64))
	var out []*greenq.Job
	for {
		idList, err := s.rdb.ZRevRangeByLex(ctx, key, &redis.ZRangeBy{Max: upper, Min: "-", Count: batch}).Result()
		if err != nil {
			return nil, "", redisErr("list jobs", err)
		}
		rows, err := s.loadMany(ctx, idList)
		if err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		for _, r := range rows {
			if matches(r.job, opts) {
				out = append(out, r.job)
				if len(out) == limit {
					return out, r.job.ID, nil
				}
			}
		}
		if int64(len(idList)) < batch {
			return out, "", nil
		}
		upper = "(" + idList[len(idList)-1]
	}
}

// listIndex picks the smallest index that covers opts; the rest of the
// filter is applied to the records read.
func (s *Store) listIndex(ctx context.Context, opts ListOptions) (string, error) {
	var cands []string
	if opts.Group != "" {
		cands = append(cands, s.k.group(opts.Group))
	}
	if opts.Tenant != "" {
		cands = append(cands, s.k.tenant(opts.Tenant))
	}
	if opts.State != "" {
		cands = append(cands, s.k.state(opts.State))
	}
	switch len(cands) {
	case 0:
		return s.k.all(), nil
	case 1:
		return cands[0], nil
	}
	cmds := make([]*redis.IntCmd, len(cands))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range cands {
			cmds[i] = p.ZCard(ctx, c)
		}
		return nil
	})
	if err != nil {
		return "", redisErr("list jobs", err)
	}
	best := 0
	for i := range cmds {
		if cmds[i].Val() < cmds[best].Val() {
			best = i
		}
	}
	return cands[best], nil
}

func matches(j *greenq.Job, o ListOptions) bool {
	if o.Tenant != "" && j.Tenant != o.Tenant || o.State != "" && j.State != o.State || o.Group != "" && j.Group != o.Group {
		return false
	}
	if o.Region != "" {
		in := j.Plan != nil && j.Plan.Region == o.Region || j.Run != nil && j.Run.Region == o.Region
		if !in {
			return false
		}
	}
	for k, v := range o.Tags {
		if got, ok := j.Tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Pending returns the jobs the planner may still move: pending and planned
// ones not being released at this moment, oldest first.
func (s *Store) Pending(ctx context.Context) ([]*greenq.Job, error) {
	rows, err := s.inStates(ctx, greenq.StatePending, greenq.StatePlanned)
	if err != nil {
		return nil, fmt.Errorf("pending jobs: %w", err)
	}
	out := make([]*greenq.Job, 0, len(rows))
	for _, r := range rows {
		if !r.resv {
			out = append(out, r.job)
		}
	}
	return out, nil
}

// Active returns the released and running jobs (the GPUs they hold are
// taken for the planner), oldest first.
func (s *Store) Active(ctx context.Context) ([]*greenq.Job, error) {
	rows, err := s.inStates(ctx, greenq.StateReleased, greenq.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("active jobs: %w", err)
	}
	out := make([]*greenq.Job, len(rows))
	for i, r := range rows {
		out[i] = r.job
	}
	return out, nil
}

// inStates reads every job whose record is in one of states (an index entry
// left behind by an interrupted write is checked against the record).
func (s *Store) inStates(ctx context.Context, states ...greenq.State) ([]*row, error) {
	var idList []string
	for _, st := range states {
		l, err := s.rdb.ZRange(ctx, s.k.state(st), 0, -1).Result()
		if err != nil {
			return nil, redisErr("read state index", err)
		}
		idList = append(idList, l...)
	}
	slices.Sort(idList)
	idList = slices.Compact(idList)
	var out []*row
	for len(idList) > 0 {
		n := min(len(idList), 500)
		rows, err := s.loadMany(ctx, idList[:n])
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if slices.Contains(states, r.job.State) {
				out = append(out, r)
			}
		}
		idList = idList[n:]
	}
	return out, nil
}

// jobCache keeps decoded job records by version between planner rounds, so
// a round re-reads only the jobs that changed since the last one.
type jobCache struct {
	mu   sync.Mutex
	jobs map[string]cachedJob
}

type cachedJob struct {
	ver string
	rel int
	job *greenq.Job
}

// pendingCached is Pending through c: it reads the versions of the pending
// and planned jobs (a few bytes each) and decodes only the records whose
// version is not the one c holds. The jobs it returns are shared with c
// and must not be modified.
func (s *Store) pendingCached(ctx context.Context, c *jobCache) ([]*greenq.Job, error) {
	jobs, err := s.inStatesCached(ctx, c, true, greenq.StatePending, greenq.StatePlanned)
	if err != nil {
		return nil, fmt.Errorf("pending jobs: %w", err)
	}
	return jobs, nil
}

// activeCached is Active through c, as pendingCached is Pending.
func (s *Store) activeCached(ctx context.Context, c *jobCache) ([]*greenq.Job, error) {
	jobs, err := s.inStatesCached(ctx, c, false, greenq.StateReleased, greenq.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("active jobs: %w", err)
	}
	return jobs, nil
}

// inStatesCached returns the jobs in states, decoding only the records
// whose version c does not hold; skipReserved leaves out jobs whose
// release is under way.
func (s *Store) inStatesCached(ctx context.Context, c *jobCache, skipReserved bool, states ...greenq.State) ([]*greenq.Job, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	idxs := make([]*redis.StringSliceCmd, len(states))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, st := range states {
			idxs[i] = p.ZRange(ctx, s.k.state(st), 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("read state index", err)
	}
	var idList []string
	for _, cmd := range idxs {
		idList = append(idList, cmd.Val()...)
	}
	slices.Sort(idList)
	idList = slices.Compact(idList)
	in := func(st string) bool { return slices.Contains(states, greenq.State(st)) }
	next := make(map[string]cachedJob, len(idList))
	out := make([]*greenq.Job, 0, len(idList))
	for len(idList) > 0 {
		n := min(len(idList), 1000)
		chunk := idList[:n]
		idList = idList[n:]
		cmds := make([]*redis.SliceCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.HMGet(ctx, s.k.job(id), "v", "state", "resv")
			}
			return nil
		})
		if err != nil {
			return nil, redisErr("read job versions", err)
		}
		var stale []string
		for i, cmd := range cmds {
			v := cmd.Val()
			ver, _ := v[0].(string)
			st, _ := v[1].(string)
			resv, _ := v[2].(string)
			if ver == "" || !in(st) || (skipReserved && resv == "1") {
				continue
			}
			if e, ok := c.jobs[chunk[i]]; ok && e.ver == ver {
				next[chunk[i]] = e
				continue
			}
			stale = append(stale, chunk[i])
		}
		rows, err := s.loadMany(ctx, stale)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if in(string(r.job.State)) && !(skipReserved && r.resv) {
				next[r.job.ID] = cachedJob{ver: r.ver, rel: r.rel, job: r.job}
			}
		}
		for _, id := range chunk {
			if e, ok := next[id]; ok {
				out = append(out, e.job)
			}
		}
	}
	c.jobs = next
	return out, nil
}
