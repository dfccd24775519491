package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// A worker machine's clock enters greenq in three places: its heartbeats
// (queue.WorkerInfo.SeenAt and the heartbeat's expiry), the run and segment
// times it reports (Run.StartedAt, Run.FinishedAt, Segments, and the
// receipt's intensity window), and its own deadline enforcement. The
// server's clock decides everything else: when a job is planned, when it is
// released (the releaser, on the leader) and when it expires. Heartbeat
// expiries are kept on Redis's clock, and a worker corrects its own clock to
// Redis's (and refuses to start when it is over 30 s off), so all of these
// agree with the server's planning.
//
// `greenq worker` has no way to skew its clock, and a test cannot move the
// OS clock, so these tests build the worker as the binary does
// (worker.New over a queue.Store) with a skewed Now, in this process,
// against a real redis-server and the real planner and releaser. asynq's
// own clock (its lease and the task's context deadline) stays the real one
// here.

// TestWorkerClockSkewRelease runs a job planned a few seconds ahead on a
// worker whose clock is 20 s ahead of, or behind, the server's. The
// server's clock alone decides the release: the job is neither released nor
// started before its planned start, and runs exactly once. The run's times,
// and so the receipt's intensity window, are on the server's clock; the
// worker is live to the server while it beats and drops out when it stops.
func TestWorkerClockSkewRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"in-sync", 0},
		{"ahead-20s", 20 * time.Second},
		{"behind-20s", -20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := newInproc(t, "sk")
			// The only green window opens 4 s from now and lasts 4 s.
			from := time.Now().Truncate(time.Second).Add(4 * time.Second)
			require.NoError(t, p.Store.PutSeries(ctx, troughSeries("sk", from, 4*time.Second)))
			w := p.startWorker("worker-"+tc.name, "sk", tc.skew)
			p.runPlanner()
			p.runReleaser()

			job, err := p.Store.Submit(ctx, "e2e", greenq.SubmitRequest{Name: "e2e-skew", Regions: []string{"sk"},
				DurationEstimateS: 1, Deadline: "30m", Command: []string{"sleep", "1"}})
			require.NoError(t, err)
			id := job[0].ID
			planned := p.waitJob(id, 10*time.Second, "the leader's plan", func(j *greenq.Job) bool {
				return j.State != greenq.StatePending && j.Plan != nil
			})
			require.False(t, planned.Plan.Urgent, "plan: %+v", planned.Plan)
			planStart := planned.Plan.Start
			require.False(t, planStart.Before(from), "planned in the green window, at %s (window from %s)", planStart, from)

			j := p.waitFinal(id, 30*time.Second)
			require.Equal(t, greenq.StateSucceeded, j.State, "error: %s", j.Error)
			rel, ok := p.releasedAt(id)
			require.True(t, ok, "released by the releaser")
			require.False(t, rel.Before(planStart), "released at %s, before its planned start %s", rel, planStart)
			started, ok := w.Store.startedAt(id)
			require.True(t, ok)
			require.False(t, started.Before(planStart), "started at %s, before its planned start %s", started, planStart)

			// Exactly once.
			require.Equal(t, 1, j.Attempts)
			require.Equal(t, 1, j.Run.Attempt)
			require.Len(t, j.Segments, 1)
			requireProcessed(t, p.topology(), map[string]int{"sk": 1})
			requireOneTaskPerJob(t, p.topology(), "sk", 1)

			// The run is stamped on the server's clock, whatever the worker's.
			require.WithinDuration(t, started, j.Run.StartedAt, time.Second, "Run.StartedAt is on the server's clock")
			require.WithinDuration(t, j.Run.StartedAt, j.Segments[0].Start, time.Second)
			require.NotNil(t, j.Run.FinishedAt)
			d := j.Run.FinishedAt.Sub(j.Run.StartedAt).Seconds()
			require.InDelta(t, 1.0, d, 0.9, "run duration")
			require.NotNil(t, j.Receipt)
			require.InDelta(t, d, j.Receipt.DurationS, 0.01, "the receipt counts the run once")
			require.Less(t, j.Receipt.IntensityGCO2PerKWh, 100.0,
				"the job ran in the 50 gCO2/kWh window, and its receipt says so (segment %s..%s)", j.Segments[0].Start, j.Segments[0].End)

			live := func() bool {
				ws, err := p.Store.Workers(ctx)
				require.NoError(t, err)
				for _, wi := range ws {
					if wi.ID == "worker-"+tc.name {
						return true
					}
				}
				return false
			}
			require.True(t, live(), "worker %s (clock %s) is live to the server", "worker-"+tc.name, tc.skew)
			// Stopped, it drops out within its heartbeat TTL (3 × 200 ms).
			w.Stop()
			waitFor(t, 2*time.Second, "the stopped worker to drop out", func() bool { return !live() })
		})
	}
}

// TestWorkerClockSkewDeadline runs jobs near their deadline on skewed
// workers. The deadline was fixed on the server's clock at submit and the
// server released the job in time, so a worker ahead of the server still
// runs it, and no worker lets a job run past its deadline, nor kills it
// before (asynq's whole-second task deadline is rounded up).
func TestWorkerClockSkewDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		skew     time.Duration
		deadline time.Duration
		command  []string
		want     greenq.State
	}{
		// Released at once (the series is flat), 15 s before its deadline:
		// inside this worker's skew, yet on time.
		{"ahead-20s", 20 * time.Second, 15 * time.Second, []string{"sleep", "0.5"}, greenq.StateSucceeded},
		// Runs 20 s, but its deadline is 3 s away: killed at the deadline.
		{"in-sync", 0, 3 * time.Second, []string{"sleep", "20"}, greenq.StateFailed},
		{"behind-20s", -20 * time.Second, 3 * time.Second, []string{"sleep", "20"}, greenq.StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := newInproc(t, "dl")
			flat := troughSeries("dl", time.Now().Add(-time.Hour), time.Second)
			require.NoError(t, p.Store.PutSeries(ctx, flat))
			w := p.startWorker("worker-"+tc.name, "dl", tc.skew)
			p.runPlanner()
			p.runReleaser()

			deadline := time.Now().Add(tc.deadline)
			job, err := p.Store.Submit(ctx, "e2e", greenq.SubmitRequest{Name: "e2e-skew-deadline", Regions: []string{"dl"},
				DurationEstimateS: 1, Deadline: deadline.UTC().Format(time.RFC3339Nano), Command: tc.command})
			require.NoError(t, err)
			id := job[0].ID
			j := p.waitFinal(id, 30*time.Second)
			rel, ok := p.releasedAt(id)
			require.True(t, ok, "released by the releaser")
			require.True(t, rel.Before(j.Deadline), "released before the deadline (server clock)")
			_, ok = w.Store.startedAt(id)
			require.True(t, ok, "the worker took the job")
			ended, ok := w.Store.finishedAt(id)
			require.True(t, ok, "the worker reported the end")
			require.Equal(t, 1, j.Attempts, "ran once")
			require.NotNil(t, j.Run.FinishedAt)
			t.Logf("skew %s: state %s (%s); deadline %s; recorded FinishedAt %s; reported at %s (real)",
				tc.skew, j.State, j.Error, j.Deadline.Format(time.RFC3339Nano), j.Run.FinishedAt.Format(time.RFC3339Nano),
				ended.UTC().Format(time.RFC3339Nano))
			require.Equal(t, tc.want, j.State, "error: %s", j.Error)
			require.False(t, ended.After(j.Deadline.Add(2*time.Second)), "the job did not run past its deadline (real time)")
			if tc.want == greenq.StateFailed {
				require.Contains(t, j.Error, "deadline")
				require.False(t, ended.Before(j.Deadline.Add(-100*time.Millisecond)),
					"killed %s before its deadline", j.Deadline.Sub(ended))
				require.WithinDuration(t, j.Deadline, *j.Run.FinishedAt, time.Second, "the record's finish is on the server's clock")
			}
		})
	}
}

// TestWorkerRefusesFarSkewedClock: a worker whose clock is minutes off
// Redis's does not start, since asynq's task leases run on the local clock
// and another worker would take over its running jobs.
func TestWorkerRefusesFarSkewedClock(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{5 * time.Minute, -5 * time.Minute} {
		p := newInproc(t, "fs")
		w := p.startWorker(fmt.Sprintf("worker-%s", skew), "fs", skew)
		select {
		case err := <-w.done:
			require.ErrorContains(t, err, "clock", "skew %s", skew)
			w.cancel = nil
		case <-time.After(10 * time.Second):
			t.Fatalf("a worker %s off the Redis server's clock started", skew)
		}
	}
}
