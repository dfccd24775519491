package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// inspector returns an asynq inspector that removes the test's region
// queues at cleanup.
func inspector(t testing.TB, b *bundle) *asynq.Inspector {
	t.Helper()
	in := asynq.NewInspector(redistest.AsynqOpt(t))
	t.Cleanup(func() {
		for _, r := range b.regions {
			_ = in.DeleteQueue(RegionQueue(r), true)
		}
		_ = in.Close()
	})
	return in
}

// hasTask reports whether region's queue holds task id.
func hasTask(t *testing.T, in *asynq.Inspector, region, id string) bool {
	t.Helper()
	_, err := in.GetTaskInfo(RegionQueue(region), id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

func newReleaser(t testing.TB, b *bundle, mod ...func(*ReleaserConfig)) *Releaser {
	t.Helper()
	cfg := ReleaserConfig{RedisConnOpt: redistest.AsynqOpt(t), Now: b.clk.Now, Logger: testLogger(t)}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := NewReleaser(b.s, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestReleaseNeverBeforePlannedStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	in := inspector(t, b)
	reg := prometheus.NewRegistry()
	var lags []time.Duration
	r := newReleaser(t, b, func(c *ReleaserConfig) {
		c.Registerer = reg
		c.OnRelease = func(_ *greenq.Job, lag time.Duration) { lags = append(lags, lag) }
	})
	j := b.submit(t, "alice")
	start := t0.Add(90*time.Second + 250*time.Microsecond) // not on a millisecond
	b.plan(t, j.ID, b.regions[1], start, false)
	taskID := j.ID + ":1"
	var err error

	for _, at := range []time.Time{t0, start.Add(-time.Millisecond), start.Add(-time.Microsecond)} {
		b.clk.Set(at)
		next, err := r.ReleaseDue(ctx)
		require.NoError(t, err)
		require.False(t, next.Before(start), "next wake-up %s is before the planned start", next)
		require.False(t, hasTask(t, in, b.regions[1], taskID), "released at %s, before %s", at, start)
		require.Equal(t, greenq.StatePlanned, mustGet(t, b, j.ID).State)
	}

	// Schedules count whole milliseconds, rounded up: released at the first
	// millisecond at or after the start.
	b.clk.Set(start.Add(750 * time.Microsecond))
	_, err = r.ReleaseDue(ctx)
	require.NoError(t, err)
	info, err := in.GetTaskInfo(RegionQueue(b.regions[1]), taskID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)
	require.Equal(t, TaskTypeRun, info.Type)
	require.JSONEq(t, `{"job_id":"`+j.ID+`","release":1}`, string(info.Payload), "the task names its release, so a stale retry cannot start the job")
	require.Equal(t, j.Deadline, info.Deadline.UTC())
	require.Equal(t, greenq.StateReleased, mustGet(t, b, j.ID).State)
	require.Equal(t, []time.Duration{750 * time.Microsecond}, lags)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var observed uint64
	for _, mf := range mfs {
		if mf.GetName() == "greenq_release_lag_seconds" {
			observed = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	require.Equal(t, uint64(1), observed)

	// Released jobs leave the schedule: another round does nothing.
	next, err := r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.True(t, next.IsZero(), "nothing left on the schedules")
}

func TestReleaseUrgentAndExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	in := inspector(t, b)
	r := newReleaser(t, b)
	urgent := b.submit(t, "alice")
	b.plan(t, urgent.ID, b.regions[0], t0.Add(5*time.Hour), true)
	stale := b.submit(t, "alice", func(q *greenq.SubmitRequest) { q.Deadline, q.DurationEstimateS = "2h", 60 })
	unplanned := b.submit(t, "alice", func(q *greenq.SubmitRequest) { q.Deadline, q.DurationEstimateS = "2h", 60 })
	b.plan(t, stale.ID, b.regions[0], t0.Add(time.Hour), false)

	_, err := r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.Equal(t, greenq.StateReleased, mustGet(t, b, urgent.ID).State, "urgent plans go at once")
	_, err = in.GetTaskInfo(RegionQueue(b.regions[0]), urgent.ID+":1")
	require.NoError(t, err)

	b.clk.Set(t0.Add(2 * time.Hour))
	_, err = r.ReleaseDue(ctx)
	require.NoError(t, err)
	for _, id := range []string{stale.ID, unplanned.ID} {
		j := mustGet(t, b, id)
		require.Equal(t, greenq.StateExpired, j.State)
		require.NotEmpty(t, j.Error)
	}
	require.False(t, hasTask(t, in, b.regions[0], stale.ID+":1"), "a job past its deadline is not released")
	next, err := r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.True(t, next.IsZero(), "nothing left on the schedules")
}

func TestReleaseNoDoubleRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	in := inspector(t, b)
	const n = 40
	var jobs []*greenq.Job
	for range n {
		j := b.submit(t, "alice")
		b.plan(t, j.ID, b.regions[0], t0, false)
		jobs = append(jobs, j)
	}
	// A replica that crashed between claiming a release and enqueuing it.
	_, err := b.s.reserve(ctx, jobs[0].ID, t0)
	require.NoError(t, err)

	var mu sync.Mutex
	released := map[string]int{}
	count := func(j *greenq.Job, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		released[j.ID]++
	}
	r1 := newReleaser(t, b, func(c *ReleaserConfig) { c.OnRelease = count; c.Concurrency = 3 })
	r2 := newReleaser(t, b, func(c *ReleaserConfig) { c.OnRelease = count; c.Concurrency = 5 })
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, r := range []*Releaser{r1, r2, r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.ReleaseDue(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	tasks, err := in.ListPendingTasks(RegionQueue(b.regions[0]), asynq.PageSize(1000))
	require.NoError(t, err)
	require.Len(t, tasks, n, "one task per job")
	for _, j := range jobs {
		require.Equal(t, 1, released[j.ID], "job %s marked released once", j.ID)
		require.Equal(t, greenq.StateReleased, mustGet(t, b, j.ID).State)
		_, err := in.GetTaskInfo(RegionQueue(b.regions[0]), j.ID+":1")
		require.NoError(t, err)
	}
}

func TestReleaseFailedEnqueueIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	fake := &fakeEnqueuer{err: errors.New("asynq redis down")}
	r := newReleaser(t, b, func(c *ReleaserConfig) { c.Client = fake })
	j := b.submit(t, "alice")
	b.plan(t, j.ID, b.regions[0], t0, false)
	_, err := r.ReleaseDue(ctx)
	require.ErrorContains(t, err, "asynq redis down")
	require.Equal(t, greenq.StatePlanned, mustGet(t, b, j.ID).State, "not released without a task")

	fake.mu.Lock()
	fake.err = nil
	fake.mu.Unlock()
	_, err = r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.Equal(t, greenq.StateReleased, mustGet(t, b, j.ID).State)
	require.Equal(t, map[string]string{j.ID + ":1": RegionQueue(b.regions[0])}, fake.tasks)
}

func TestReleaseFenced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fake := &fakeEnqueuer{}
	r := newReleaser(t, b, func(c *ReleaserConfig) { c.Client = fake })
	j := b.submit(t, "alice")
	b.plan(t, j.ID, b.regions[0], t0, false)
	require.NoError(t, b.rdb.Set(context.Background(), b.s.k.fence(), 7, 0).Err())
	_, err := r.ReleaseDue(WithFence(context.Background(), 6))
	require.ErrorIs(t, err, ErrFenced)
	require.Empty(t, fake.tasks, "a deposed leader enqueues nothing")
	_, err = r.ReleaseDue(WithFence(context.Background(), 7))
	require.NoError(t, err)
	require.Len(t, fake.tasks, 1)
}

// TestReleaseLoop runs the loop on the real clock: it sleeps until the
// planned start, and a plan made while it sleeps wakes it.
func TestReleaseLoop(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Now = time.Now })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type rel struct {
		id    string
		at    time.Time
		start time.Time
	}
	got := make(chan rel, 4)
	fake := &fakeEnqueuer{}
	r := newReleaser(t, b, func(c *ReleaserConfig) {
		c.Client, c.Now, c.Poll = fake, time.Now, time.Hour
		c.OnRelease = func(j *greenq.Job, _ time.Duration) { got <- rel{j.ID, time.Now(), j.Plan.Start} }
	})
	late := b.submit(t, "alice")
	b.plan(t, late.ID, b.regions[0], time.Now().Add(300*time.Millisecond), false)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	soon := b.submit(t, "alice")
	b.plan(t, soon.ID, b.regions[0], time.Now().Add(50*time.Millisecond), false) // wakes the loop via pub/sub
	for _, want := range []string{soon.ID, late.ID} {
		select {
		case x := <-got:
			require.Equal(t, want, x.id)
			require.False(t, x.at.Before(x.start), "released %s before its start", x.start.Sub(x.at))
		case <-time.After(10 * time.Second):
			t.Fatal("not released")
		}
	}
	cancel()
	require.NoError(t, <-done)
}

func TestTaskDeadlineNeverEarly(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Time{t0, t0.Add(time.Millisecond), t0.Add(999 * time.Millisecond), t0.Add(time.Second + time.Nanosecond)} {
		got := taskDeadline(d)
		require.False(t, got.Before(d), "%s → %s", d, got)
		require.Zero(t, got.Nanosecond(), "whole seconds, as asynq keeps them")
		require.Less(t, got.Sub(d), time.Second)
	}
}

// TestReleaserMetricsRegistration: a second releaser in one process
// shares the first's metrics; a name taken by another kind of collector
// is an error, not silently unexported.
func TestReleaserMetricsRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	for range 2 {
		r, err := NewReleaser(b.s, ReleaserConfig{Client: &fakeEnqueuer{}, Registerer: reg})
		require.NoError(t, err)
		require.NoError(t, r.Close())
	}
	taken := prometheus.NewRegistry()
	taken.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenq_jobs_expired_total", Help: "something else"}))
	_, err := NewReleaser(b.s, ReleaserConfig{Client: &fakeEnqueuer{}, Registerer: taken})
	require.ErrorContains(t, err, "register metrics")
}
