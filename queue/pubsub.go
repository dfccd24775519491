package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wake messages on the wake channel.
const (
	wakePlan    = "plan"    // jobs or forecasts changed: re-plan
	wakeRelease = "release" // plans changed: the release loop re-reads its schedule
)

// wakeGap is the least time between two wake publishes of one kind: a
// burst of submissions costs one publish per gap, not one per submit, and
// the planner coalesces triggers over a far longer time anyway.
const wakeGap = 20 * time.Millisecond

// wake tells the planner and release loop of every replica that something
// changed. It does not wait: one publish per kind is in flight at a time,
// the next no sooner than wakeGap after it, and wakes asked for meanwhile
// fold into that one. Best effort: both loops also run on their own
// schedule.
func (s *Store) wake(ctx context.Context, what string) {
	s.wmu.Lock()
	if s.wbusy[what] {
		s.wagain[what] = true
		s.wmu.Unlock()
		return
	}
	s.wbusy[what] = true
	s.wmu.Unlock()
	go func() {
		for {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := s.rdb.Publish(pctx, s.k.wakeChannel(), what).Err(); err != nil {
				s.log.Debug("publish wake", "what", what, "err", err)
			}
			cancel()
			time.Sleep(wakeGap)
			s.wmu.Lock()
			if !s.wagain[what] {
				s.wbusy[what] = false
				s.wmu.Unlock()
				return
			}
			s.wagain[what] = false
			s.wmu.Unlock()
		}
	}()
}

// CancelEvents streams the ids of jobs cancelled on any replica (Redis
// pub/sub) until ctx ends, then closes. The subscription reconnects by
// itself after a Redis restart; ids published while it was down are lost,
// so a worker should also notice cancellation when it next reads its job.
func (s *Store) CancelEvents(ctx context.Context) <-chan string {
	return s.subscribe(ctx, s.k.cancelChannel())
}

// PauseEvents streams the ids of running interruptible jobs the planner
// asks to pause (a re-plan found better hours ahead for the rest of the
// run) until ctx ends, then closes. An id lost while the subscription was
// down costs only the better plan: the job runs on to its segment's end.
func (s *Store) PauseEvents(ctx context.Context) <-chan string {
	return s.subscribe(ctx, s.k.pauseChannel())
}

// publishPauses asks the workers running ids to pause them
// (PauseEvents).
func (s *Store) publishPauses(ctx context.Context, ids []string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, s.k.pauseChannel(), id)
		}
		return nil
	})
	return redisErr("publish pauses", err)
}

// wakeEvents streams wake messages (wakePlan, wakeRelease).
func (s *Store) wakeEvents(ctx context.Context) <-chan string {
	return s.subscribe(ctx, s.k.wakeChannel())
}

func (s *Store) subscribe(ctx context.Context, channel string) <-chan string {
	out := make(chan string, 64)
	ps := s.rdb.Subscribe(ctx, channel)
	// Wait for Redis to confirm, so that whatever the caller does next is
	// seen. If Redis is down, go on: the channel subscribes when it can.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := ps.Receive(rctx); err != nil && ctx.Err() == nil {
		s.log.Warn("subscribe", "channel", channel, "err", err)
	}
	cancel()
	go func() {
		defer close(out)
		defer ps.Close()
		// go-redis re-dials and re-subscribes when the connection drops.
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// sleepUntilWake sleeps for d, or until local fires or a wake of kind
// arrives on *wakes (from any replica), and reports false when ctx ends
// first. A closed wakes channel is set to nil, leaving the timer and local
// to wake the loop.
func sleepUntilWake(ctx context.Context, d time.Duration, local <-chan struct{}, wakes *<-chan string, kind string) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-local:
			return true
		case m, ok := <-*wakes:
			if !ok {
				*wakes = nil
				continue
			}
			if m == kind {
				return true
			}
		}
	}
}
