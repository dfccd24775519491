package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Clock offsets: a worker corrects its clock to Redis's (every greenq
// process shares that one) so that run times, receipts and deadlines agree
// with the server's planning, warns when its own clock is off, and refuses
// to start when it is so far off that asynq's task leases, which use the
// local clock, could hand a running job to another worker.
const (
	warnClockOffset = time.Second
	maxClockOffset  = 30 * time.Second
)

// skewClock is the worker's clock: Config.Now plus the measured offset to
// the Redis server's clock.
type skewClock struct {
	base   func() time.Time
	offset atomic.Int64 // nanoseconds to add to base
}

func (c *skewClock) now() time.Time {
	return c.base().Add(time.Duration(c.offset.Load()))
}

// measure reads the server's clock and sets the offset, taking the local
// reading halfway through the round trip.
func (c *skewClock) measure(ctx context.Context, serverTime func(context.Context) (time.Time, error)) (time.Duration, error) {
	t0 := c.base()
	st, err := serverTime(ctx)
	if err != nil {
		return time.Duration(c.offset.Load()), err
	}
	t1 := c.base()
	off := st.Sub(t0.Add(t1.Sub(t0) / 2))
	c.offset.Store(int64(off))
	return off, nil
}

// syncClock measures the offset and logs or refuses it.
func (w *Worker) syncClock(ctx context.Context, atStart bool) error {
	off, err := w.clock.measure(ctx, w.store.ServerTime)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("read the Redis server's clock", "err", err)
		}
		return nil
	}
	abs := off
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs > maxClockOffset && atStart:
		return fmt.Errorf("this machine's clock is %s off the Redis server's (more than %s): fix its time sync (NTP) before running jobs", off.Round(time.Millisecond), maxClockOffset)
	case abs > maxClockOffset:
		w.log.Error("clock drifted far from the Redis server's; fix time sync", "offset", off.Round(time.Millisecond))
	case abs > warnClockOffset:
		w.log.Warn("clock differs from the Redis server's; using the server's time", "offset", off.Round(time.Millisecond))
	}
	return nil
}

// runTimers are timers on the worker's clock, stopped together. Under
// testing/synctest they run on the bubble's fake time.
type runTimers struct {
	clock *skewClock
	ts    []*time.Timer
}

// at returns a channel that fires at when, by the worker's clock; nil
// (never) for the zero time.
func (t *runTimers) at(when time.Time) <-chan time.Time {
	if when.IsZero() {
		return nil
	}
	tm := time.NewTimer(when.Sub(t.clock.now()))
	t.ts = append(t.ts, tm)
	return tm.C
}

func (t *runTimers) stop() {
	for _, tm := range t.ts {
		tm.Stop()
	}
}

// sleep waits d on the worker's clock, or until ctx ends (its error).
func (c *skewClock) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
