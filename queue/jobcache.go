package queue

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// jobSource is what a jobCache reads: the versions of the jobs in some
// states (a few bytes each) and the records of the jobs it does not hold.
// *Store implements it.
type jobSource interface {
	stateVersions(ctx context.Context, skipReserved bool, states ...greenq.State) ([]jobVersion, error)
	loadMany(ctx context.Context, ids []string) ([]*row, error)
}

// jobVersion is one job's id and record version.
type jobVersion struct{ id, ver string }

// jobCache keeps decoded job records by version between planner rounds (or
// metric scrapes), so a round re-reads only the jobs that changed since the
// last one. Its owner, not the store, keeps it.
type jobCache struct {
	mu   sync.Mutex
	jobs map[string]cachedJob
}

type cachedJob struct {
	ver string
	rel int
	job *greenq.Job
}

// load returns the jobs in states, oldest first, reading the versions
// from src and decoding only the records whose version c does not hold;
// skipReserved leaves out jobs whose release is under way. The jobs it
// returns are shared with c and must not be modified.
func (c *jobCache) load(ctx context.Context, src jobSource, skipReserved bool, states ...greenq.State) ([]*greenq.Job, error) {
	vers, err := src.stateVersions(ctx, skipReserved, states...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]cachedJob, len(vers))
	var stale []string
	for _, v := range vers {
		if e, ok := c.jobs[v.id]; ok && e.ver == v.ver {
			next[v.id] = e
			continue
		}
		stale = append(stale, v.id)
	}
	for len(stale) > 0 {
		n := min(len(stale), 1000)
		rows, err := src.loadMany(ctx, stale[:n])
		if err != nil {
			return nil, err
		}
		stale = stale[n:]
		for _, r := range rows {
			if slices.Contains(states, r.job.State) && !(skipReserved && r.resv) {
				next[r.job.ID] = cachedJob{ver: r.ver, rel: r.rel, job: r.job}
			}
		}
	}
	out := make([]*greenq.Job, 0, len(next))
	for _, v := range vers {
		if e, ok := next[v.id]; ok {
			out = append(out, e.job)
		}
	}
	c.jobs = next
	return out, nil
}

// row returns a copy of the record of job id as c holds it, to change and
// write by compare-and-set; nil when c does not hold it.
func (c *jobCache) row(id string) *row {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.jobs[id]
	if !ok {
		return nil
	}
	j := *e.job // the cached job is shared: change a copy
	return &row{job: &j, ver: e.ver, rel: e.rel}
}

// put keeps rows, records just written, at their new versions, so the
// next round need not read them again.
func (c *jobCache) put(rows []*row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs == nil {
		c.jobs = map[string]cachedJob{}
	}
	for _, r := range rows {
		c.jobs[r.job.ID] = cachedJob{ver: r.ver, rel: r.rel, job: r.job}
	}
}

// stateVersions returns the id and version of every job whose record is
// in one of states, by id (oldest first); skipReserved leaves out jobs
// whose release is under way.
func (s *Store) stateVersions(ctx context.Context, skipReserved bool, states ...greenq.State) ([]jobVersion, error) {
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
	out := make([]jobVersion, 0, len(idList))
	for len(idList) > 0 {
		chunk := idList[:min(len(idList), 1000)]
		idList = idList[len(chunk):]
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
		for i, cmd := range cmds {
			v := cmd.Val()
			ver, _ := v[0].(string)
			st, _ := v[1].(string)
			resv, _ := v[2].(string)
			if ver != "" && slices.Contains(states, greenq.State(st)) && !(skipReserved && resv == "1") {
				out = append(out, jobVersion{id: chunk[i], ver: ver})
			}
		}
	}
	return out, nil
}

// pending is load for the jobs a planning round plans: pending and
// planned ones not being released.
func (c *jobCache) pending(ctx context.Context, src jobSource) ([]*greenq.Job, error) {
	jobs, err := c.load(ctx, src, true, greenq.StatePending, greenq.StatePlanned)
	if err != nil {
		return nil, fmt.Errorf("pending jobs: %w", err)
	}
	return jobs, nil
}

// active is load for the released and running jobs, whose GPUs are taken.
func (c *jobCache) active(ctx context.Context, src jobSource) ([]*greenq.Job, error) {
	jobs, err := c.load(ctx, src, false, greenq.StateReleased, greenq.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("active jobs: %w", err)
	}
	return jobs, nil
}
