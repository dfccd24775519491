package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/greenq/greenq"
)

// This file holds the job lifecycle after submit: get, cancel, start and
// finish (with pauses of interruptible jobs).

// Get returns job id. Tenant "" (an admin) sees every job; a job of another
// tenant is reported as not found (wrapping greenq.ErrNotFound), like one
// that does not exist.
func (s *Store) Get(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	r, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if tenant != "" && r.job.Tenant != tenant {
		return nil, notFound(id)
	}
	return r.job, nil
}

// Cancel cancels job id in any non-final state and announces it on the
// cancel channel (CancelEvents) so a worker running it stops. A job already
// final gives CodeConflict; another tenant's job, not found.
func (s *Store) Cancel(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if tenant != "" && j.Tenant != tenant {
			return notFound(id)
		}
		if j.State.Final() {
			return conflict("job %s is already %s", id, j.State)
		}
		if err := transition(j, greenq.StateCancelled); err != nil {
			return err
		}
		j.State, j.UpdatedAt = greenq.StateCancelled, s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	if err := s.rdb.Publish(ctx, s.k.cancelChannel(), id).Err(); err != nil {
		// The record says cancelled; a worker learns it when it next reads
		// the job.
		s.log.Warn("announce cancel", "job", id, "err", err)
	}
	return r.job, nil
}

// Start records that a worker starts job id: released (or running, when
// asynq hands the job of a dead worker to another) becomes running, the
// attempt is counted and run.Attempt set. A job in any other state, such as
// cancelled, or a task of an earlier release gives CodeConflict: the worker
// must not run it. A job still running on another live worker gives
// CodeUnavailable: the task is to be retried later. The task of a release
// still under way (enqueued, the job not yet marked released) gives
// ErrReleasing.
func (s *Store) Start(ctx context.Context, id string, run greenq.Run) (*greenq.Job, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if j.State == greenq.StatePlanned && r.resv && (run.Release == 0 || run.Release == r.rel) {
			return fmt.Errorf("start job %s: %w", id, ErrReleasing)
		}
		if j.State != greenq.StateReleased && j.State != greenq.StateRunning {
			return conflict("job %s is %s; only a released or running job can start", id, j.State)
		}
		if run.Release > 0 && run.Release != r.rel {
			return conflict("job %s: the task of release %d is stale (the job is on release %d)", id, run.Release, r.rel)
		}
		if j.State == greenq.StateRunning && j.Run != nil && j.Run.Worker != run.Worker {
			// asynq hands a task to another worker when its lease lapses:
			// the first worker died, or its clock is far behind. Only the
			// first case may start the job again.
			live, err := s.workerLive(ctx, j.Run.Worker)
			if err != nil {
				return err
			}
			if live {
				// Unavailable, not conflict: the task must be retried later,
				// once that worker has finished the job or been seen dead.
				return greenq.Errorf(greenq.CodeUnavailable, "job %s is running on worker %s, which is alive; try again later", id, j.Run.Worker)
			}
		}
		now := s.now().UTC()
		j.Attempts++
		run := run
		run.Attempt = j.Attempts
		if run.StartedAt.IsZero() {
			run.StartedAt = now
		}
		run.FinishedAt, run.ExitCode = nil, nil
		j.Run, j.State, j.UpdatedAt, j.Error = &run, greenq.StateRunning, now, ""
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	return r.job, nil
}

// Finish records the end of a run. A running job moves to f.State
// (succeeded, failed, cancelled, or planned when an interruptible job
// pauses at the end of a segment); f.Segment joins Segments unless a
// segment with the same start is already there, so a repeated report never
// counts energy twice; the receipt, exit code and finish time are set. On
// success the run's duration and energy are remembered for the job's name
// (Measurement). Repeating a Finish that already took effect changes
// nothing and is not an error. If the job was cancelled meanwhile, the
// segment and receipt are still recorded (the energy was spent) and Finish
// returns the job with a CodeConflict error.
func (s *Store) Finish(ctx context.Context, id string, f FinishRequest) (*greenq.Job, error) {
	switch f.State {
	case greenq.StateSucceeded, greenq.StateFailed, greenq.StateCancelled, greenq.StatePlanned:
	default:
		return nil, greenq.Invalid("state", "%q is not a state a run can finish in (succeeded, failed, cancelled, or planned when paused)", f.State)
	}
	var (
		measured        bool
		cancelledBefore bool
	)
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		measured, cancelledBefore = false, false
		now := s.now().UTC()
		newSeg := addSegment(j, f.Segment)
		switch {
		case j.State == greenq.StateRunning:
			if err := transition(j, f.State); err != nil {
				return err
			}
			end := now
			if !f.Segment.End.IsZero() {
				end = f.Segment.End.UTC()
			}
			if j.Run == nil {
				j.Run = &greenq.Run{}
			}
			code := f.ExitCode
			j.Run.FinishedAt, j.Run.ExitCode = &end, &code
			j.State, j.Error = f.State, f.Error
			if f.Receipt != nil {
				j.Receipt = f.Receipt
			}
			if f.Outputs != nil {
				j.Outputs = f.Outputs
			}
			if f.State == greenq.StatePlanned {
				pause(j, end)
			}
			measured = f.State == greenq.StateSucceeded
		case j.State == f.State && j.State.Final(), j.State == greenq.StateCancelled:
			cancelledBefore = j.State == greenq.StateCancelled && f.State != greenq.StateCancelled
			if f.Receipt != nil && j.Receipt == nil {
				j.Receipt = f.Receipt
			} else if !newSeg {
				return errNoChange
			}
		default:
			return conflict("job %s is %s; only a running job can finish", id, j.State)
		}
		j.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	s.markRestatable(ctx, r.job)
	if measured && r.job.Name != "" {
		if err := s.recordMeasurement(ctx, r.job); err != nil {
			s.log.Warn("record measurement", "job", id, "name", r.job.Name, "err", err)
		}
	}
	if r.job.State == greenq.StatePlanned {
		s.wake(ctx, wakePlan)
	}
	if cancelledBefore {
		return r.job, conflict("job %s was cancelled while it ran; its run was recorded", id)
	}
	return r.job, nil
}

// addSegment appends seg unless it is empty or a segment with the same
// start is already recorded; it reports whether it appended.
func addSegment(j *greenq.Job, seg greenq.RunSegment) bool {
	if seg.Start.IsZero() {
		return false
	}
	for _, have := range j.Segments {
		if have.Start.Equal(seg.Start) {
			return false
		}
	}
	seg.Start, seg.End = seg.Start.UTC(), seg.End.UTC()
	j.Segments = append(j.Segments, seg)
	return true
}

// pause keeps the windows of j's plan that lie after end: the next one
// becomes the start the release loop waits for. With none left, the plan
// is dropped and the planner finds a window for the rest of the job.
func pause(j *greenq.Job, end time.Time) {
	if j.Plan == nil {
		return
	}
	var rest []greenq.Window
	for _, w := range j.Plan.Segments {
		if !w.Start.Before(end) {
			rest = append(rest, w)
		}
	}
	if len(rest) == 0 {
		j.Plan = nil
		return
	}
	p := *j.Plan
	p.Segments, p.Start, p.Urgent = rest, rest[0].Start, false
	j.Plan = &p
}
