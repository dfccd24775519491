package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/redis/go-redis/v9"
)

// This file holds the job records and their compare-and-set engine: load,
// update, write (one or many) and the state machine check.

// row is a job record as stored: the job plus the fields only the store
// reads.
type row struct {
	job  *greenq.Job
	ver  string // compare-and-set version
	rel  int    // releases reserved so far (asynq task id suffix)
	resv bool   // a release is under way: enqueued or about to be
}

// errNoChange tells update that fn changed nothing worth writing.
var errNoChange = errors.New("no change")

// load reads one job record.
func (s *Store) load(ctx context.Context, id string) (*row, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	vals, err := s.rdb.HMGet(ctx, s.k.job(id), "json", "v", "rel", "resv").Result()
	if err != nil {
		return nil, redisErr("load job", err)
	}
	return decodeRow(id, vals)
}

func decodeRow(id string, vals []any) (*row, error) {
	js, _ := vals[0].(string)
	if js == "" {
		return nil, notFound(id)
	}
	r := &row{job: new(greenq.Job)}
	if err := json.Unmarshal([]byte(js), r.job); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	r.ver, _ = vals[1].(string)
	if s, ok := vals[2].(string); ok {
		r.rel, _ = strconv.Atoi(s)
	}
	if s, ok := vals[3].(string); ok {
		r.resv = s == "1"
	}
	return r, nil
}

// loadMany reads the records of ids in one round trip; missing ids are
// skipped (an index may briefly name a job that is gone).
func (s *Store) loadMany(ctx context.Context, ids []string) ([]*row, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.k.job(id), "json", "v", "rel", "resv")
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("load jobs", err)
	}
	out := make([]*row, 0, len(ids))
	for i, c := range cmds {
		r, err := decodeRow(ids[i], c.Val())
		if errors.Is(err, greenq.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// update applies fn to job id and writes the result if nobody changed the
// job meanwhile, retrying from a fresh read otherwise. fn may return
// errNoChange to skip the write, or any other error to abort.
func (s *Store) update(ctx context.Context, id string, fn func(r *row) error) (*row, error) {
	for range maxCASRetries {
		r, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		old := r.job.State
		if err := fn(r); err != nil {
			if errors.Is(err, errNoChange) {
				return r, nil
			}
			return r, err
		}
		ok, err := s.write(ctx, id, r, old)
		if err != nil {
			return nil, err
		}
		if ok {
			return r, nil
		}
	}
	return nil, greenq.Errorf(greenq.CodeUnavailable, "job %s: too many concurrent updates, try again", id)
}

// write stores r if its version is unchanged; false means another writer
// won and the caller should re-read.
func (s *Store) write(ctx context.Context, id string, r *row, old greenq.State) (bool, error) {
	keys, args, err := s.writeArgs(ctx, id, r, old)
	if err != nil {
		return false, err
	}
	res, err := writeScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, redisErr("write job", err)
	}
	return writeResult(id, r, res)
}

// writeArgs returns the keys and arguments of writeScript storing r.
func (s *Store) writeArgs(ctx context.Context, id string, r *row, old greenq.State) ([]string, []any, error) {
	j := r.job
	ni, oi := stateIndex(j.State), stateIndex(old)
	if ni < 0 {
		return nil, nil, fmt.Errorf("write job %s: unknown state %q", id, j.State)
	}
	if oi < 0 {
		oi = ni
	}
	js, err := json.Marshal(j)
	if err != nil {
		return nil, nil, fmt.Errorf("encode job %s: %w", id, err)
	}
	relScore, dlScore := "", ""
	if j.State == greenq.StatePlanned && j.Plan != nil && !j.Plan.Held {
		// The release schedule is scored by planning.ReleaseAt as seen from
		// the epoch: the planned start, or 0 (due at once) when urgent.
		relScore = strconv.FormatInt(ceilMilli(planning.ReleaseAt(j.Plan, time.Unix(0, 0))), 10)
	}
	if j.State == greenq.StatePending || j.State == greenq.StatePlanned {
		dlScore = strconv.FormatInt(ceilMilli(j.Deadline), 10)
	}
	keys := append([]string{s.k.job(id), s.k.fence(), s.k.release(), s.k.deadline()}, s.k.stateKeys()...)
	return keys, []any{r.ver, js, ni + 1, oi + 1, id, relScore, dlScore,
		fenceArg(ctx), r.rel, b2s(r.resv), string(j.State)}, nil
}

// writeResult interprets writeScript's answer for r: true when written
// (r's version then moves on), false when another writer changed the job.
func writeResult(id string, r *row, res int) (bool, error) {
	switch res {
	case 1:
		v, _ := strconv.Atoi(r.ver)
		r.ver = strconv.Itoa(v + 1)
		return true, nil
	case -1:
		return false, fmt.Errorf("write job %s: %w", id, ErrFenced)
	case -2:
		return false, notFound(id)
	}
	return false, nil
}

// writeMany is write for many jobs in one pipeline: olds[i] is rows[i]'s
// state as read. Each job is still its own compare-and-set; the results
// say per job what write would have (true written, false changed
// meanwhile, or an error such as not found or ErrFenced).
func (s *Store) writeMany(ctx context.Context, rows []*row, olds []greenq.State) ([]bool, []error) {
	oks, errs := make([]bool, len(rows)), make([]error, len(rows))
	cmds := make([]*redis.Cmd, len(rows))
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(rows))
	for i, r := range rows {
		calls[i].keys, calls[i].args, errs[i] = s.writeArgs(ctx, r.job.ID, r, olds[i])
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			if errs[i] == nil {
				cmds[i] = writeScript.EvalSha(ctx, p, c.keys, c.args...)
			}
		}
		return nil
	})
	for i, c := range cmds {
		if c == nil {
			continue
		}
		res, err := c.Int()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// The script is not cached yet (or Redis restarted): Run loads it.
			res, err = writeScript.Run(ctx, s.rdb, calls[i].keys, calls[i].args...).Int()
		}
		if err != nil {
			errs[i] = redisErr("write job", err)
			continue
		}
		oks[i], errs[i] = writeResult(rows[i].job.ID, rows[i], res)
	}
	return oks, errs
}

// ceilMilli returns t in Unix milliseconds, rounded up so that a score
// reached by the clock never lies before t.
func ceilMilli(t time.Time) int64 {
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return ms
}

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms) }

// transition checks the state machine for r's job moving to next.
func transition(j *greenq.Job, next greenq.State) error {
	if !greenq.CanTransition(j.State, next) {
		return conflict("job %s is %s; it cannot become %s", j.ID, j.State, next)
	}
	return nil
}
