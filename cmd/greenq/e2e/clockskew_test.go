package e2e

import (
	"context"
	"fmt"
	"strings"
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
// released (the releaser, on the leader) and when it expires.
//
// `greenq worker` has no way to skew its clock, and a test cannot move the
// OS clock, so these tests build the worker as the binary does
// (worker.New over a queue.Store) with a skewed Now, in this process,
// against a real redis-server and the real planner and releaser. asynq's
// own clock (its lease and the task's context deadline) stays the real one
// here; on a skewed machine it would be skewed too (see the deadline test).

// knownBugs collects what a test found wrong with greenq, so that it can
// assert everything else first and then skip, naming every bug, instead of
// stopping at the first.
type knownBugs struct {
	t    *testing.T
	bugs []string
}

// check records a known bug when ok is false.
func (k *knownBugs) check(ok bool, format string, args ...any) {
	k.t.Helper()
	if !ok {
		k.bugs = append(k.bugs, fmt.Sprintf(format, args...))
	}
}

// skipIfAny skips the test naming the bugs found (they are reported for the
// packages that own them; the test passes once they are fixed).
func (k *knownBugs) skipIfAny() {
	k.t.Helper()
	if len(k.bugs) > 0 {
		k.t.Skip("known bug: " + strings.Join(k.bugs, "; "))
	}
}

// TestWorkerClockSkewRelease runs a job planned a few seconds ahead on a
// worker whose clock is five minutes ahead of, or behind, the server's.
// The server's clock alone decides the release: the job is neither
// released nor started before its planned start, and runs exactly once.
// The worker's clock stamps the run: StartedAt is off by the skew, the
// duration and receipt duration are right (the skew cancels out).
//
// Known bugs it reports (skipping at the end): a worker more than three
// heartbeats behind is never live to the server, and one ahead stays live
// for the skew after it stops (the heartbeat's expiry is written on the
// worker's clock and read on the server's); the receipt's
// intensity is looked up over the worker-clock interval, so it charges the
// carbon of a different window than the one the job ran in.
func TestWorkerClockSkewRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"in-sync", 0}, // the control: every check holds
		{"ahead-5m", 5 * time.Minute},
		{"behind-5m", -5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bugs := &knownBugs{t: t}
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

			// The worker's clock stamps the run; durations are right.
			require.WithinDuration(t, started.Add(tc.skew), j.Run.StartedAt, time.Second,
				"Run.StartedAt is on the worker's clock")
			require.WithinDuration(t, j.Run.StartedAt, j.Segments[0].Start, time.Second)
			require.NotNil(t, j.Run.FinishedAt)
			d := j.Run.FinishedAt.Sub(j.Run.StartedAt).Seconds()
			require.InDelta(t, 1.0, d, 0.9, "run duration")
			require.NotNil(t, j.Receipt)
			require.InDelta(t, d, j.Receipt.DurationS, 0.01, "the receipt counts the run once")
			t.Logf("skew %s: planned %s, released %+.3fs, started %+.3fs after; recorded StartedAt %s (real %s); deadline %s; receipt %.0f gCO2/kWh over %.2fs",
				tc.skew, planStart.Format(time.RFC3339Nano), rel.Sub(planStart).Seconds(), started.Sub(planStart).Seconds(),
				j.Run.StartedAt.Format(time.RFC3339Nano), started.UTC().Format(time.RFC3339Nano), j.Deadline.Format(time.RFC3339),
				j.Receipt.IntensityGCO2PerKWh, j.Receipt.DurationS)

			// Known bugs: liveness and the receipt's window.
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
			bugs.check(live(), "worker %s (clock %s) is not live to the server: queue.Store.Heartbeat writes the heartbeat's expiry on the worker's clock (queue/shared.go Heartbeat) and Workers compares it with the server's",
				"worker-"+tc.name, tc.skew)
			// Stopped, it must drop out within its heartbeat TTL (3 × 200 ms).
			w.Stop()
			gone := time.Now().Add(2 * time.Second)
			for live() && time.Now().Before(gone) {
				time.Sleep(100 * time.Millisecond)
			}
			bugs.check(!live(), "worker %s (clock %s) stopped but is still live to the server 2 s later (its TTL is 600 ms): its GPUs count as capacity until its own clock's expiry passes on the server's, the skew later",
				"worker-"+tc.name, tc.skew)
			bugs.check(j.Receipt.IntensityGCO2PerKWh < 100,
				"receipt intensity %.0f gCO2/kWh: the job ran in the 50 gCO2/kWh window (server clock) but worker.receipt looks the series up over its worker-clock segment %s..%s",
				j.Receipt.IntensityGCO2PerKWh, j.Segments[0].Start.Format(time.RFC3339), j.Segments[0].End.Format(time.RFC3339))
			bugs.skipIfAny()
		})
	}
}

// TestWorkerClockSkewDeadline runs jobs near their deadline on skewed
// workers. The deadline was fixed on the server's clock at submit; the
// server released the job in time, so a worker ahead of the server must
// still run it, and a worker behind it must not let it run past the
// deadline (real time).
//
// Known bugs it reports: a worker ahead refuses a job whose deadline is
// within its skew ("deadline passed before the job could start"), and its
// deadline timer would kill running jobs early by the skew; a worker behind
// records a FinishedAt before the deadline it says passed; and, clock skew
// or not, a job is killed up to a second before its deadline, because
// asynq keeps the task's deadline in whole seconds. In this process
// asynq's task deadline (the real clock) still kills the late job on time;
// on a machine whose OS clock is behind, asynq's context deadline is late
// too, and the job would overrun its deadline by the skew.
func TestWorkerClockSkewDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		skew     time.Duration
		deadline time.Duration
		command  []string
		want     greenq.State
	}{
		// Released at once (the series is flat), 60 s before its deadline.
		{"ahead-5m", 5 * time.Minute, time.Minute, []string{"sleep", "0.5"}, greenq.StateSucceeded},
		// Runs 20 s, but its deadline is 3 s away: killed at the deadline.
		{"in-sync", 0, 3 * time.Second, []string{"sleep", "20"}, greenq.StateFailed}, // the control
		{"behind-5m", -5 * time.Minute, 3 * time.Second, []string{"sleep", "20"}, greenq.StateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bugs := &knownBugs{t: t}
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
			// (asynq counts a task killed by its deadline as failed, not
			// completed; a retry of it would find the job final and not run.)
			require.NotNil(t, j.Run.FinishedAt)
			t.Logf("skew %s: state %s (%s); deadline %s; recorded FinishedAt %s; reported at %s (real)",
				tc.skew, j.State, j.Error, j.Deadline.Format(time.RFC3339Nano), j.Run.FinishedAt.Format(time.RFC3339Nano),
				ended.UTC().Format(time.RFC3339Nano))
			require.False(t, ended.After(j.Deadline.Add(2*time.Second)), "the job did not run past its deadline (real time)")

			bugs.check(j.State == tc.want, "worker %s: job %s, want %s (%s): worker.execute checks and times the deadline on the worker's clock (worker/handler.go execute)",
				tc.skew, j.State, tc.want, j.Error)
			if j.State == greenq.StateFailed && strings.Contains(j.Error, "deadline") && !strings.Contains(j.Error, "before the job could start") {
				bugs.check(!ended.Before(j.Deadline), "killed %s before its deadline %s (real time) as past it: asynq keeps a task's deadline in whole Unix seconds, so the context that queue/releaser.go's asynq.Deadline(j.Deadline) gives the handler ends up to 1 s early",
					j.Deadline.Sub(ended).Round(time.Millisecond), j.Deadline.Format(time.RFC3339Nano))
				if tc.skew != 0 {
					bugs.check(!j.Run.FinishedAt.Before(j.Deadline.Add(-time.Second)), "worker %s: the record says the deadline %s passed but FinishedAt is %s (worker clock)",
						tc.skew, j.Deadline.Format(time.RFC3339), j.Run.FinishedAt.Format(time.RFC3339))
				}
			}
			bugs.skipIfAny()
		})
	}
}
