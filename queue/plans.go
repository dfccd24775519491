package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// SetPlans gives each job in plans (by id) its plan: pending and planned
// jobs become planned. A job released, finished or being released
// meanwhile is skipped, as is one whose plan is unchanged (same region and
// windows). It returns how many jobs changed. Under a leader's fencing
// token (WithFence) a superseded token stops it with ErrFenced.
func (s *Store) SetPlans(ctx context.Context, plans map[string]greenq.Plan) (int, error) {
	idList := make([]string, 0, len(plans))
	for id := range plans {
		if validID(id) {
			idList = append(idList, id)
		}
	}
	slices.Sort(idList)
	now := s.now().UTC()
	applied := false
	apply := func(r *row) error {
		applied = false
		j := r.job
		if (j.State != greenq.StatePending && j.State != greenq.StatePlanned) || r.resv {
			return errNoChange
		}
		p := plans[j.ID]
		if j.State == greenq.StatePlanned && samePlan(j.Plan, &p) {
			return errNoChange
		}
		if err := transition(j, greenq.StatePlanned); err != nil {
			return err
		}
		p.Start, p.End, p.PlannedAt = p.Start.UTC(), p.End.UTC(), p.PlannedAt.UTC()
		if p.PlannedAt.IsZero() {
			p.PlannedAt = now
		}
		j.Plan, j.State, j.UpdatedAt = &p, greenq.StatePlanned, now
		applied = true
		return nil
	}
	changed := 0
	defer func() {
		if changed > 0 {
			s.wake(ctx, wakeRelease)
		}
	}()
	for len(idList) > 0 {
		n := min(len(idList), 500)
		rows, err := s.loadMany(ctx, idList[:n])
		if err != nil {
			return changed, fmt.Errorf("set plans: %w", err)
		}
		idList = idList[n:]
		for _, r := range rows {
			old := r.job.State
			if err := apply(r); err != nil {
				if errors.Is(err, errNoChange) {
					continue
				}
				return changed, fmt.Errorf("set plans: %w", err)
			}
			ok, err := s.write(ctx, r.job.ID, r, old)
			if err == nil && !ok {
				// Changed since it was read: redo from a fresh read.
				_, err = s.update(ctx, r.job.ID, apply)
				ok = err == nil && applied
			}
			switch {
			case errors.Is(err, greenq.ErrNotFound):
				continue
			case err != nil:
				return changed, fmt.Errorf("set plans: %w", err)
			case ok:
				changed++
			}
		}
	}
	return changed, nil
}

// samePlan reports whether b puts the job where a already does.
func samePlan(a, b *greenq.Plan) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Region != b.Region || !a.Start.Equal(b.Start) || !a.End.Equal(b.End) || a.Urgent != b.Urgent || len(a.Segments) != len(b.Segments) {
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
		if j.State != greenq.StatePlanned || j.Plan == nil {
			return errSkip
		}
		if !j.Plan.Urgent && now.Before(j.Plan.Start) {
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
