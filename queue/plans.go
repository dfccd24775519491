package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/redis/go-redis/v9"
)

// SetPlans gives each job in plans (by id) its plan: pending and planned
// jobs become planned. A job released, finished or being released
// meanwhile is skipped, as is one whose plan is unchanged (same region and
// windows). It returns how many jobs changed. Under a leader's fencing
// token (WithFence) a superseded token stops it with ErrFenced.
//
// Plans are written earliest start first, a few hundred per round trip,
// and the release loop is woken after each such batch, so a job due now is
// released without waiting for the rest of a large round to be written.
func (s *Store) SetPlans(ctx context.Context, plans map[string]greenq.Plan) (int, error) {
	changes := make([]planChange, 0, len(plans))
	for id, p := range plans {
		changes = append(changes, planChange{id: id, plan: p})
	}
	_, n, err := s.writePlans(ctx, changes)
	return n, err
}

// planChange is one job's new plan, set against the job's record as the
// caller read it.
type planChange struct {
	id   string
	plan greenq.Plan
	// read is the record as the caller read it, a copy it lets the store
	// change; nil: the store reads it.
	read *row
}

// writePlans is SetPlans for changes, starting from the records they carry
// instead of reading them again; each write is still a compare-and-set
// against the version read. It returns the records it wrote over the
// version read, at their new version (a planner's cache keeps them, so
// the next round need not read them), and how many jobs changed.
func (s *Store) writePlans(ctx context.Context, changes []planChange) ([]*row, int, error) {
	changes = planOrder(changes)
	plans := make(map[string]greenq.Plan, len(changes))
	for _, c := range changes {
		plans[c.id] = c.plan
	}
	now := s.now().UTC()
	var written []*row
	changed := 0
	for len(changes) > 0 {
		n := min(len(changes), 500)
		rows, err := s.planRows(ctx, changes[:n])
		if err != nil {
			return written, changed, fmt.Errorf("set plans: %w", err)
		}
		changes = changes[n:]
		todo, olds := rows[:0], make([]greenq.State, 0, len(rows))
		for _, r := range rows {
			old := r.job.State
			ok, err := applyPlan(r, plans[r.job.ID], now)
			if err != nil {
				return written, changed, fmt.Errorf("set plans: %w", err)
			}
			if ok {
				todo, olds = append(todo, r), append(olds, old)
			}
		}
		w, k, err := s.writeBatch(ctx, todo, olds, plans, now)
		written, changed = append(written, w...), changed+k
		if k > 0 {
			// Wake the release loop after each batch: a job due now need not
			// wait for the rest of a large round.
			s.wake(ctx, wakeRelease)
		}
		if err != nil {
			return written, changed, fmt.Errorf("set plans: %w", err)
		}
	}
	return written, changed, nil
}

// planOrder returns the changes of valid ids, urgent first, then by start.
func planOrder(changes []planChange) []planChange {
	out := make([]planChange, 0, len(changes))
	for _, c := range changes {
		if validID(c.id) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b planChange) int {
		pa, pb := a.plan, b.plan
		if pa.Urgent != pb.Urgent {
			if pa.Urgent {
				return -1
			}
			return 1
		}
		if c := pa.Start.Compare(pb.Start); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// planRows returns the records of changes: those they carry and the rest
// read from Redis.
func (s *Store) planRows(ctx context.Context, changes []planChange) ([]*row, error) {
	var rows []*row
	var missing []string
	for _, c := range changes {
		if c.read == nil {
			missing = append(missing, c.id)
			continue
		}
		rows = append(rows, c.read)
	}
	loaded, err := s.loadMany(ctx, missing)
	return append(rows, loaded...), err
}

// applyPlan gives r's job plan p at now, moving it to planned (or pending,
// when p holds it). It reports false, changing nothing, for a job released,
// finished or being released, or already on p.
func applyPlan(r *row, p greenq.Plan, now time.Time) (bool, error) {
	j := r.job
	if (j.State != greenq.StatePending && j.State != greenq.StatePlanned) || r.resv {
		return false, nil
	}
	next := planState(&p) // a held job stays pending, off the release schedule
	if j.State == next && samePlan(j.Plan, &p) {
		return false, nil
	}
	if j.State != next {
		if err := transition(j, next); err != nil {
			return false, err
		}
	}
	p.Start, p.End, p.PlannedAt = p.Start.UTC(), p.End.UTC(), p.PlannedAt.UTC()
	if p.PlannedAt.IsZero() {
		p.PlannedAt = now
	}
	j.Plan, j.State, j.UpdatedAt = &p, next, now
	return true, nil
}

// writeBatch writes the rows applyPlan changed (olds: their states as
// read) in one pipeline, redoing from a fresh read each that changed
// meanwhile. It returns the rows written at their read version and how
// many jobs changed; a job gone meanwhile is skipped.
func (s *Store) writeBatch(ctx context.Context, todo []*row, olds []greenq.State, plans map[string]greenq.Plan, now time.Time) ([]*row, int, error) {
	oks, errs := s.writeMany(ctx, todo, olds)
	var written []*row
	changed := 0
	for i, r := range todo {
		ok, err := oks[i], errs[i]
		if err == nil && !ok {
			// Changed since it was read: redo from a fresh read.
			ok, err = s.replan(ctx, r.job.ID, plans[r.job.ID], now)
		}
		switch {
		case errors.Is(err, greenq.ErrNotFound):
			continue
		case err != nil:
			return written, changed, err
		case ok:
			changed++
			if oks[i] {
				written = append(written, r)
			}
		}
	}
	return written, changed, nil
}

// replan is applyPlan on a fresh read of job id, written by compare-and-set.
func (s *Store) replan(ctx context.Context, id string, p greenq.Plan, now time.Time) (bool, error) {
	applied := false
	_, err := s.update(ctx, id, func(r *row) error {
		ok, err := applyPlan(r, p, now)
		applied = ok
		if err == nil && !ok {
			return errNoChange
		}
		return err
	})
	return applied, err
}

// samePlan reports whether b puts the job where a already does, as
// firmly (a provisional plan the leader confirms is rewritten as its own).
func samePlan(a, b *greenq.Plan) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Region != b.Region || !a.Start.Equal(b.Start) || !a.End.Equal(b.End) || a.Urgent != b.Urgent || a.Held != b.Held || len(a.Segments) != len(b.Segments) ||
		a.Provisional != b.Provisional {
		return false
	}
	// The reason's wording changes as time passes ("defer 5h", "defer 4h"),
	// so it is not compared, but the signal it rests on is: a plan that
	// moves onto or off a fallback signal is rewritten to say so.
	if a.Signal != b.Signal {
		return false
	}
	for i := range a.Segments {
		if !a.Segments[i].Start.Equal(b.Segments[i].Start) || !a.Segments[i].End.Equal(b.Segments[i].End) {
			return false
		}
	}
	return true
}

// errNotDue and errSkip end a release attempt without an error to report.
var (
	errNotDue       = errors.New("not due yet")
	errSkip         = errors.New("not releasable")
	errPastDeadline = errors.New("deadline passed")
)

// reserve claims the next release number of planned job id whose window
// has opened by now. Claiming is idempotent: while a release is under way
// every caller gets the same number, so two release loops enqueue the same
// asynq task id and asynq keeps one. A reserved job is no longer moved by
// SetPlans.
func (s *Store) reserve(ctx context.Context, id string, now time.Time) (*row, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if j.State != greenq.StatePlanned || j.Plan == nil || j.Plan.Held {
			return errSkip
		}
		if planning.ReleaseAt(j.Plan, now).After(now) {
			return errNotDue
		}
		if !r.resv && !now.Before(j.Deadline) {
			return errPastDeadline
		}
		if r.resv {
			return errNoChange
		}
		r.rel++
		r.resv = true
		return nil
	})
	if errors.Is(err, errSkip) {
		s.unschedule(ctx, s.k.release(), id, greenq.StatePlanned)
	}
	return r, err
}

// markReleased moves a reserved job to released once its task (release
// number n) is on the region's queue. It reports false when the job left
// planned meanwhile (cancelled, say): the task then finds it not released
// and is dropped by the worker.
func (s *Store) markReleased(ctx context.Context, r *row, n int) (*greenq.Job, bool, error) {
	apply := func(r *row) error {
		j := r.job
		if j.State != greenq.StatePlanned || !r.resv || r.rel != n {
			return errSkip
		}
		j.State, j.UpdatedAt, r.resv = greenq.StateReleased, s.now().UTC(), false
		return nil
	}
	id := r.job.ID
	if err := apply(r); err == nil {
		ok, err := s.write(ctx, id, r, greenq.StatePlanned)
		if err != nil {
			return nil, false, fmt.Errorf("mark released: %w", err)
		}
		if ok {
			return r.job, true, nil
		}
	}
	r, err := s.update(ctx, id, apply)
	switch {
	case errors.Is(err, errSkip):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("mark released: %w", err)
	}
	return r.job, true, nil
}

// expire marks a pending or planned job whose deadline has passed without a
// start as expired. It reports whether it did.
func (s *Store) expire(ctx context.Context, id string, now time.Time) (bool, error) {
	_, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if (j.State != greenq.StatePending && j.State != greenq.StatePlanned) || r.resv {
			return errSkip
		}
		if now.Before(j.Deadline) {
			return errNotDue
		}
		if err := transition(j, greenq.StateExpired); err != nil {
			return err
		}
		j.State, j.UpdatedAt = greenq.StateExpired, now.UTC()
		j.Error = "could not start before its deadline"
		if j.Plan != nil && j.Plan.Held {
			j.Error = fmt.Sprintf("could not start before its deadline: no window under its price cap of $%.2f/GPU-h (max_price_usd_per_gpu_hour) in any allowed region", j.MaxPriceUSDPerGPUHour)
		}
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
		s.unschedule(ctx, s.k.deadline(), id, greenq.StatePending, greenq.StatePlanned)
		return false, nil
	case errors.Is(err, errNotDue), errors.Is(err, greenq.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("expire: %w", err)
	}
	return true, nil
}

// unscheduleScript removes a job from a schedule (release or deadline)
// unless its state is one that keeps it there; it clears entries left by
// writes that changed the state but were interrupted, or by deleted jobs.
var unscheduleScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
for i = 2, #ARGV do if st == ARGV[i] then return 0 end end
return redis.call('ZREM', KEYS[2], ARGV[1])
`)

func (s *Store) unschedule(ctx context.Context, zset, id string, keep ...greenq.State) {
	args := []any{id}
	for _, st := range keep {
		args = append(args, string(st))
	}
	if err := unscheduleScript.Run(ctx, s.rdb, []string{s.k.job(id), zset}, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		s.log.Warn("unschedule", "job", id, "err", err)
	}
}

// due returns up to n job ids whose score in zset is at or before now.
func (s *Store) due(ctx context.Context, zset string, now time.Time, n int64) ([]string, error) {
	l, err := s.rdb.ZRangeByScore(ctx, zset, &redis.ZRangeBy{Min: "-inf", Max: fmt.Sprint(now.UnixMilli()), Count: n}).Result()
	if err != nil {
		return nil, redisErr("read schedule", err)
	}
	return l, nil
}

// nextAt returns the earliest score in zset, if any.
func (s *Store) nextAt(ctx context.Context, zset string) (time.Time, bool, error) {
	z, err := s.rdb.ZRangeWithScores(ctx, zset, 0, 0).Result()
	if err != nil {
		return time.Time{}, false, redisErr("read schedule", err)
	}
	if len(z) == 0 {
		return time.Time{}, false, nil
	}
	return fromMilli(int64(z[0].Score)), true, nil
}

// reserveManyScript is reserve for many jobs at once, deciding from the
// fields and schedules writeScript keeps in step with each record: state,
// resv, the release score (ceilMilli of the planned start, 0 when urgent)
// and the deadline score. ARGV[1] is now in whole Unix milliseconds, so a
// score at or below it means a start (or deadline) at or before now.
//
// KEYS: fence, release, deadline, then one job key per id.
// ARGV: now ms, fencing token (empty = none), then the ids.
// Returns -1 when fenced, else per job {code, json, version, rel}: code 1
// reserved (now or by an earlier call), 0 not due, -2 not releasable (taken
// off the release schedule), -3 past its deadline unreserved.
var reserveManyScript = redis.NewScript(`
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return -1 end
local now = tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV do
  local id, key = ARGV[i], KEYS[i + 1]
  local h = redis.call('HMGET', key, 'state', 'resv', 'v', 'rel', 'json')
  local sc = redis.call('ZSCORE', KEYS[2], id)
  if h[1] ~= 'planned' then
    redis.call('ZREM', KEYS[2], id)
    out[#out + 1] = {-2}
  elseif not sc or tonumber(sc) > now then
    out[#out + 1] = {0}
  elseif h[2] == '1' then
    out[#out + 1] = {1, h[5], h[3], h[4]}
  else
    local dl = redis.call('ZSCORE', KEYS[3], id)
    if dl and tonumber(dl) <= now then
      out[#out + 1] = {-3}
    else
      local v, rel = tostring(tonumber(h[3]) + 1), tostring(tonumber(h[4]) + 1)
      redis.call('HSET', key, 'v', v, 'rel', rel, 'resv', '1')
      out[#out + 1] = {1, h[5], v, rel}
    end
  end
end
return out
`)

// reservation is reserveMany's answer for one job: row is set when the job
// is reserved for release row.rel; else err says why not (errNotDue,
// errSkip, errPastDeadline).
type reservation struct {
	id  string
	row *row
	err error
}

// reserveMany is reserve for ids in one round trip, at now truncated to
// the millisecond (the resolution of the schedules it decides from; the
// truncation can only make a release later, never earlier).
func (s *Store) reserveMany(ctx context.Context, ids []string, now time.Time) ([]reservation, error) {
	keys := make([]string, 0, len(ids)+3)
	keys = append(keys, s.k.fence(), s.k.release(), s.k.deadline())
	args := make([]any, 0, len(ids)+2)
	args = append(args, now.UnixMilli(), fenceArg(ctx))
	for _, id := range ids {
		keys = append(keys, s.k.job(id))
		args = append(args, id)
	}
	res, err := reserveManyScript.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return nil, redisErr("reserve jobs", err)
	}
	list, ok := res.([]any)
	if !ok {
		if n, _ := res.(int64); n == -1 {
			return nil, fmt.Errorf("reserve jobs: %w", ErrFenced)
		}
		return nil, fmt.Errorf("reserve jobs: unexpected answer %v", res)
	}
	if len(list) != len(ids) {
		return nil, fmt.Errorf("reserve jobs: %d answers for %d jobs", len(list), len(ids))
	}
	out := make([]reservation, len(ids))
	for i, v := range list {
		out[i].id = ids[i]
		f, _ := v.([]any)
		code := int64(-2)
		if len(f) > 0 {
			code, _ = f[0].(int64)
		}
		switch code {
		case 0:
			out[i].err = errNotDue
		case -3:
			out[i].err = errPastDeadline
		case 1:
			if len(f) < 4 {
				return nil, fmt.Errorf("reserve jobs: short answer for job %s", ids[i])
			}
			js, _ := f[1].(string)
			ver, _ := f[2].(string)
			rel, _ := f[3].(string)
			r, err := decodeRow(ids[i], []any{js, ver, rel, "1"})
			if err != nil {
				return nil, err
			}
			out[i].row = r
		default:
			out[i].err = errSkip
		}
	}
	return out, nil
}

// markManyReleased is markReleased for many reserved rows in one pipeline.
// Per row it returns the released job, or nil when the job left planned or
// its reservation meanwhile (as markReleased's false), or an error.
func (s *Store) markManyReleased(ctx context.Context, rows []*row) ([]*greenq.Job, []error) {
	out := make([]*greenq.Job, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	now := s.now().UTC()
	next := make([]*row, len(rows))
	olds := make([]greenq.State, len(rows))
	for i, r := range rows {
		j := *r.job
		j.State, j.UpdatedAt = greenq.StateReleased, now
		next[i] = &row{job: &j, ver: r.ver, rel: r.rel}
		olds[i] = greenq.StatePlanned
	}
	oks, errs := s.writeMany(ctx, next, olds)
	for i, r := range rows {
		switch {
		case errors.Is(errs[i], greenq.ErrNotFound):
			errs[i] = nil
		case errs[i] != nil:
			errs[i] = fmt.Errorf("mark released: %w", errs[i])
		case oks[i]:
			out[i] = next[i].job
		default:
			// Changed since it was reserved: decide from a fresh read.
			j, ok, err := s.markReleased(ctx, r, r.rel)
			if ok {
				out[i] = j
			}
			errs[i] = err
		}
	}
	return out, errs
}
