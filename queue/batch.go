package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greenq/greenq"
)

// BatchError is SubmitMany's refusal of a batch because of one of its
// requests: nothing of the batch was stored.
type BatchError struct {
	// Index is the refused request's place in the batch, from 0.
	Index int
	// Err is why, as Submit would have refused the request alone.
	Err error
}

// Error implements error.
func (e *BatchError) Error() string { return fmt.Sprintf("job %d: %v", e.Index+1, e.Err) }

// Unwrap returns Err.
func (e *BatchError) Unwrap() error { return e.Err }

// createManyScript is createScript for many submissions at once: it stores
// every submission's jobs, index entries and idempotency record, or, when
// the key of one of them is taken meanwhile, nothing, returning that
// submission's index. Out of memory refuses the script before its first
// write, so either every job is stored or none is.
//
// KEYS: all, state:pending, deadline, then per submission (idem, tenant,
// group), then the job keys in order.
// ARGV: number of submissions, tenant, then per submission (use idem 1|0,
// idem TTL ms, idempotency record JSON, has group 1|0, number of jobs),
// then (id, json, deadline ms) per job.
// Returns -1 when stored.
var createManyScript = redis.NewScript(`
local S = tonumber(ARGV[1])
for s = 0, S - 1 do
  if ARGV[3 + s * 5] == '1' and redis.call('EXISTS', KEYS[4 + s * 3]) == 1 then return s end
end
local jk, ja = 4 + S * 3, 3 + S * 5
for s = 0, S - 1 do
  local a, k = 3 + s * 5, 4 + s * 3
  for i = 1, tonumber(ARGV[a + 4]) do
    local id = ARGV[ja]
    redis.call('HSET', KEYS[jk], 'json', ARGV[ja + 1], 'state', 'pending', 'v', '1', 'rel', '0', 'resv', '0', 'tenant', ARGV[2])
    redis.call('ZADD', KEYS[1], 0, id)
    redis.call('ZADD', KEYS[k + 1], 0, id)
    if ARGV[a + 3] == '1' then redis.call('ZADD', KEYS[k + 2], 0, id) end
    redis.call('ZADD', KEYS[2], 0, id)
    redis.call('ZADD', KEYS[3], ARGV[ja + 2], id)
    jk, ja = jk + 1, ja + 3
  end
  if ARGV[a] == '1' then redis.call('SET', KEYS[k], ARGV[a + 2], 'PX', ARGV[a + 1]) end
end
return -1
`)

// SubmitMany is SubmitJSON for a batch of requests, all or nothing: every
// request is validated and built first, the new jobs get their provisional
// plans in one planning call, and one script stores them all. A request
// refused (as Submit would refuse it alone) is a *BatchError naming it,
// and nothing is stored. A request whose idempotency key was used before
// with the same body answers that submission's jobs (Existing); the same
// key with another body refuses the batch (CodeConflict naming key), as
// does a key given twice in one batch (CodeInvalidArgument).
func (s *Store) SubmitMany(ctx context.Context, tenant string, reqs []greenq.SubmitRequest) ([]Submitted, error) {
	now := s.now()
	out := make([]Submitted, len(reqs))
	prior, err := s.priorRecords(ctx, tenant, reqs)
	if err != nil {
		return nil, err
	}
	var subs []*submission
	var jobs []*greenq.Job
	keyAt := map[string]int{}
	for i, req := range reqs {
		if k, ok := keyAt[req.Key]; ok && req.Key != "" {
			return nil, &BatchError{Index: i, Err: greenq.Invalid("key", "repeats the key of job %d of the batch; a key names one submission", k+1)}
		}
		keyAt[req.Key] = i
		fingerprint := requestFingerprint(req)
		deadline, err := req.Normalize(now, s.names)
		if err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
		if raw, ok := prior[i]; ok {
			if out[i], err = s.existing(ctx, raw, fingerprint); err != nil {
				return nil, &BatchError{Index: i, Err: err}
			}
			out[i].Existing = true
			continue
		}
		sub, err := s.build(ctx, tenant, req, fingerprint, deadline, now)
		if err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
		subs = append(subs, sub)
		jobs = append(jobs, sub.jobs...)
	}
	if len(subs) == 0 {
		return out, nil
	}
	s.prov.Plan(ctx, now, jobs)
	if err := s.createMany(ctx, tenant, subs, now); err != nil {
		var be *BatchError
		if errors.As(err, &be) {
			be.Index = indexOf(reqs, out, be.Index)
		}
		return nil, err
	}
	s.wake(ctx, wakePlan)
	k := 0
	for i := range out {
		if !out[i].Existing {
			out[i] = Submitted{Jobs: subs[k].jobs, JSON: subs[k].json}
			k++
		}
	}
	return out, nil
}

// indexOf maps the n-th new submission of a batch (out: the requests
// answered from earlier submissions, Existing) to its request's index.
func indexOf(reqs []greenq.SubmitRequest, out []Submitted, n int) int {
	for i := range reqs {
		if out[i].Existing {
			continue
		}
		if n == 0 {
			return i
		}
		n--
	}
	return -1
}

// priorRecords reads, in one round trip, the idempotency records the keys
// of reqs hold, by request index.
func (s *Store) priorRecords(ctx context.Context, tenant string, reqs []greenq.SubmitRequest) (map[int]string, error) {
	cmds := map[int]*redis.StringCmd{}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, req := range reqs {
			if req.Key != "" {
				cmds[i] = p.Get(ctx, s.k.idem(tenant, req.Key))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("submit", err)
	}
	out := map[int]string{}
	for i, c := range cmds {
		if v, err := c.Result(); err == nil {
			out[i] = v
		}
	}
	return out, nil
}

// createMany stores subs (encoding their jobs) with createManyScript. A
// key taken meanwhile by a concurrent submission is a *BatchError whose
// Index is that submission's place in subs.
func (s *Store) createMany(ctx context.Context, tenant string, subs []*submission, now time.Time) error {
	keys := []string{s.k.all(), s.k.state(greenq.StatePending), s.k.deadline()}
	args := []any{len(subs), tenant}
	var jobKeys []string
	var jobArgs []any
	for _, sub := range subs {
		if err := sub.encode(); err != nil {
			return err
		}
		idem := s.k.job("x") // a key of the same slot, unused
		if sub.idemKey != "" {
			idem = sub.idemKey
		}
		keys = append(keys, idem, s.k.tenant(tenant), s.k.group(sub.group))
		args = append(args, b2s(sub.idemKey != ""), sub.idemTTL(now).Milliseconds(),
			sub.record(), b2s(sub.group != ""), len(sub.jobs))
		for i, j := range sub.jobs {
			jobKeys = append(jobKeys, s.k.job(j.ID))
			jobArgs = append(jobArgs, j.ID, sub.json[i], ceilMilli(j.Deadline))
		}
	}
	n, err := createManyScript.Run(ctx, s.rdb, append(keys, jobKeys...), append(args, jobArgs...)...).Int()
	switch {
	case err != nil:
		return redisErr("submit", err)
	case n >= 0:
		return &BatchError{Index: n, Err: &greenq.Error{Code: greenq.CodeConflict, Field: "key",
			Message: "was taken by a concurrent submission meanwhile; retry to get its jobs"}}
	}
	return nil
}
