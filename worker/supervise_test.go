package worker

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker/executor"
)

// stubExec starts stubProcs: jobs that only record the signals they get,
// when, and end on SIGKILL, or on SIGTERM when exitOnTerm.
type stubExec struct {
	exitOnTerm bool
	mu         sync.Mutex
	procs      []*stubProc
}

func (e *stubExec) Start(_ context.Context, s executor.Spec) (executor.Process, error) {
	p := &stubProc{e: e, spec: s, exit: make(chan executor.Exit, 1)}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

type sigAt struct {
	sig     syscall.Signal
	at      time.Duration // since the test began
	control string        // the control file's notice when it came
}

type stubProc struct {
	e    *stubExec
	spec executor.Spec
	exit chan executor.Exit
	mu   sync.Mutex
	sigs []sigAt
	done bool
}

// began is when every bubble's clock starts (testing/synctest).
var began = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (p *stubProc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctl, _ := os.ReadFile(envValue(p.spec.Env, EnvControlFile))
	p.sigs = append(p.sigs, sigAt{sig, time.Since(began), strings.TrimSpace(string(ctl))})
	switch {
	case p.done:
	case sig == syscall.SIGKILL:
		p.end(128 + int(syscall.SIGKILL))
	case sig == syscall.SIGTERM && p.e.exitOnTerm:
		p.end(143)
	}
	return nil
}

func (p *stubProc) end(code int) {
	p.done = true
	p.exit <- executor.Exit{Code: code}
}

func (p *stubProc) Wait() executor.Exit { return <-p.exit }

func (p *stubProc) signals() []sigAt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sigAt(nil), p.sigs...)
}

// Every stop is on the worker's clock: the deadline, the warning before
// it, the end of a segment, a cancel, a drain, and SIGKILL one grace after
// SIGTERM. The run's timers are exact under testing/synctest.
func TestStopProtocolOnTheClock(t *testing.T) {
	t.Parallel()
	const grace = 30 * time.Second
	for _, c := range []struct {
		name       string
		job        func(now time.Time) greenq.Job
		exitOnTerm bool
		act        func(b bundle, id string)
		want       []sigAt
		state      greenq.State
	}{
		{name: "deadline, TERM ignored: KILL after the grace",
			job:   func(now time.Time) greenq.Job { return greenq.Job{Deadline: now.Add(time.Hour)} },
			want:  []sigAt{{syscall.SIGTERM, time.Hour, ControlStop}, {syscall.SIGKILL, time.Hour + grace, ControlStop}},
			state: greenq.StateFailed},
		{name: "warning before the deadline",
			job: func(now time.Time) greenq.Job {
				return greenq.Job{Deadline: now.Add(time.Hour), JobSpec: greenq.JobSpec{WarnSignal: "USR1", WarnBeforeS: 300}}
			},
			exitOnTerm: true,
			want:       []sigAt{{syscall.SIGUSR1, 55 * time.Minute, ""}, {syscall.SIGTERM, time.Hour, ControlStop}},
			state:      greenq.StateFailed},
		{name: "end of an interruptible job's segment: a pause",
			job: func(now time.Time) greenq.Job {
				return greenq.Job{Interruptible: true, Plan: &greenq.Plan{Region: testRegion, Segments: []greenq.Window{
					{Start: now.Add(-time.Minute), End: now.Add(10 * time.Minute)}, {Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}}}}
			},
			exitOnTerm: true,
			want:       []sigAt{{syscall.SIGTERM, 10 * time.Minute, ControlPause}},
			state:      greenq.StatePlanned},
		{name: "cancel",
			job:        func(time.Time) greenq.Job { return greenq.Job{} },
			act:        func(b bundle, id string) { time.Sleep(5 * time.Minute); b.fs.cancel(id) },
			exitOnTerm: true,
			want:       []sigAt{{syscall.SIGTERM, 5 * time.Minute, ControlStop}},
			state:      greenq.StateCancelled},
		{name: "drain pauses an interruptible job",
			job:   func(time.Time) greenq.Job { return greenq.Job{Interruptible: true} },
			act:   func(b bundle, _ string) { time.Sleep(7 * time.Minute); b.w.drain() },
			want:  []sigAt{{syscall.SIGTERM, 7 * time.Minute, ControlPause}, {syscall.SIGKILL, 7*time.Minute + grace, ControlPause}},
			state: greenq.StatePlanned},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ex := &stubExec{exitOnTerm: c.exitOnTerm}
				b := setup(t, func(cfg *Config) { cfg.Executor, cfg.Grace = ex, grace })
				j := c.job(time.Now())
				j.Command = []string{"train"}
				id := b.submit(t, j)
				errc := b.process(context.Background(), id)
				if c.act != nil {
					synctest.Wait()
					c.act(b, id)
				}
				require.NoError(t, <-errc)
				f := <-b.fs.finishes
				require.Equal(t, c.state, f.f.State, f.f.Error)
				require.Len(t, ex.procs, 1)
				require.Equal(t, c.want, ex.procs[0].signals())
			})
		})
	}
}

// finish retries a store that blinked on the worker's clock (200 ms, then
// 400 ms), and stops retrying once the worker gives its tasks back.
func TestFinishRetriesOnTheClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, func(cfg *Config) { cfg.Executor = &fakeCluster{exit: executor.Exit{Code: 0}} })
		b.fs.finishFails = 2
		id := b.submit(t, greenq.Job{Command: []string{"train"}})
		start := time.Now()
		require.NoError(t, <-b.process(context.Background(), id))
		require.Equal(t, greenq.StateSucceeded, (<-b.fs.finishes).f.State)
		tries := b.fs.finishTries
		require.Len(t, tries, 3)
		require.Equal(t, 200*time.Millisecond, tries[1].Sub(tries[0]))
		require.Equal(t, 400*time.Millisecond, tries[2].Sub(tries[1]))
		require.Equal(t, 50*time.Millisecond, tries[0].Sub(start), "the fake cluster's run takes 50 ms")
	})
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, func(cfg *Config) { cfg.Executor = &fakeCluster{exit: executor.Exit{Code: 0}} })
		b.fs.finishFails = 1000
		id := b.submit(t, greenq.Job{Command: []string{"train"}})
		errc := b.process(context.Background(), id)
		time.Sleep(300 * time.Millisecond) // the run ends at 50 ms; retries at 250 ms, then 650 ms
		b.w.abandonRunning()
		require.NoError(t, <-errc)
		require.Len(t, b.fs.finishTries, 2, "no retry after the worker gave its tasks back")
		require.Equal(t, greenq.StateRunning, b.fs.job(id).State, "the record stays running: asynq runs the task again")
	})
}

// A task handed over between the release loop's enqueue and its marking
// the job released is started once the release lands, not dropped.
func TestStartWaitsForTheRelease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, func(cfg *Config) { cfg.Executor = &fakeCluster{exit: executor.Exit{Code: 0}} })
		b.fs.releasing = 3
		id := b.submit(t, greenq.Job{Command: []string{"train"}})
		require.NoError(t, <-b.process(context.Background(), id))
		require.Equal(t, greenq.StateSucceeded, (<-b.fs.finishes).f.State)
		tries := b.fs.startTries
		require.Len(t, tries, 4)
		require.Equal(t, 3*startWaitStep, tries[3].Sub(tries[0]), "tried again every startWaitStep")
	})
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, func(cfg *Config) { cfg.Executor = &fakeCluster{exit: executor.Exit{Code: 0}} })
		b.fs.releasing = startWaitSteps + 1
		id := b.submit(t, greenq.Job{Command: []string{"train"}})
		err := <-b.process(context.Background(), id)
		require.ErrorIs(t, err, queue.ErrReleasing, "after the wait the task goes back to asynq for a retry")
		require.Len(t, b.fs.startTries, startWaitSteps)
	})
}

// The heartbeat beats at once and then every HeartbeatInterval, on the
// worker's clock, until its context ends.
func TestHeartbeatLoopOnTheClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, func(cfg *Config) { cfg.HeartbeatInterval = 5 * time.Second })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); b.w.heartbeatLoop(ctx) }()
		time.Sleep(12 * time.Second)
		cancel()
		<-done
		var at []time.Duration
		for len(b.fs.beats) > 0 {
			at = append(at, (<-b.fs.beats).SeenAt.Sub(began))
		}
		require.Equal(t, []time.Duration{0, 5 * time.Second, 10 * time.Second}, at)
	})
}
