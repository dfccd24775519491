package queue

import (
	"context"
	"fmt"
	"slices"

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
