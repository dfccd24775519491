package queue

import (
	"context"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
	"github.com/stretchr/testify/require"
)

// hourly returns a series of region over [t0, t0+24h) at base, with the
// hours in dip at low.
func hourly(region string, base, low float64, dip ...int) forecast.Series {
	s := forecast.Series{Region: region, Zone: "Z", Source: "test", Signal: forecast.SignalAverage, IssuedAt: t0}
	for h := range 24 {
		v := base
		for _, d := range dip {
			if h == d {
				v = low
			}
		}
		st := t0.Add(time.Duration(h) * time.Hour)
		s.Points = append(s.Points, forecast.Point{Start: st, End: st.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindForecast})
	}
	return s
}

func TestPlannerRound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, c := b.regions[0], b.regions[1]
	require.NoError(t, b.s.PutSeries(ctx, hourly(a, 300, 300)))
	require.NoError(t, b.s.PutSeries(ctx, hourly(c, 300, 40, 3, 4)))
	got, err := b.s.Series(ctx, c)
	require.NoError(t, err)
	require.Equal(t, 40.0, got.Points[3].GCO2PerKWh)
	_, err = b.s.Series(ctx, "nowhere")
	require.ErrorIs(t, err, greenq.ErrNotFound)

	free := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	only := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h"; r.Regions = []string{a} })
	short := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "50m"; r.DurationEstimateS = 0 })
	held := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	b.plan(t, held.ID, a, t0.Add(time.Hour), false)
	b.force(t, held.ID, greenq.StateReleased)

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	res, err := p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, res.Planned, "released jobs are not planned")
	require.Equal(t, 3, res.Changed)

	j, err := b.s.Get(ctx, "", free.ID)
	require.NoError(t, err)
	require.Equal(t, greenq.StatePlanned, j.State)
	require.Equal(t, c, j.Plan.Region, "the cleaner region")
	require.False(t, j.Plan.Start.Before(t0.Add(3*time.Hour)), "inside the clean window: %s", j.Plan.Start)
	require.False(t, j.Plan.End.After(t0.Add(5*time.Hour)), "inside the clean window: %s", j.Plan.End)
	require.Equal(t, t0, j.Plan.PlannedAt)
	require.NotEmpty(t, j.Plan.Reason)
	require.Greater(t, j.Plan.Baseline.ExpectedGCO2, j.Plan.ExpectedGCO2)

	j, err = b.s.Get(ctx, "", only.ID)
	require.NoError(t, err)
	require.Equal(t, a, j.Plan.Region, "a job allowed one region stays there")

	// No duration and no measured run: the default fits a 50m deadline
	// (a quarter of it), so the job is placed, not released at once as
	// "cannot finish", and the reason says what was assumed.
	j, err = b.s.Get(ctx, "", short.ID)
	require.NoError(t, err)
	require.Equal(t, int64(12*60), j.DurationEstimateS)
	require.Equal(t, greenq.EstimateDefault, j.EstimateSource)
	require.False(t, j.Plan.Urgent, "%s", j.Plan.Reason)
	require.False(t, j.Plan.End.After(j.Deadline), "%s", j.Plan.Reason)
	require.Contains(t, j.Plan.Reason, "duration assumed 12m")
	require.NotContains(t, mustGet(t, b, free.ID).Plan.Reason, "assumed", "a job with a duration")

	j, err = b.s.Get(ctx, "", held.ID)
	require.NoError(t, err)
	require.Equal(t, greenq.StateReleased, j.State)
	require.Equal(t, a, j.Plan.Region, "a released job is never moved")
	require.Equal(t, t0.Add(time.Hour), j.Plan.Start)

	// A second round with nothing new changes nothing.
	n, err := b.s.SetPlans(ctx, map[string]greenq.Plan{free.ID: *mustGet(t, b, free.ID).Plan})
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestPlannerSaysWhenOnFallbackSignal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, c := b.regions[0], b.regions[1]
	good := hourly(a, 300, 300)
	fallback := hourly(c, 300, 40, 3, 4)
	fallback.Source = "greenq-forecaster (electricitymaps down)"
	require.NoError(t, b.s.PutSeries(ctx, good))
	require.NoError(t, b.s.PutSeries(ctx, fallback))
	onGood := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h"; r.Regions = []string{a} })
	onFallback := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h"; r.Regions = []string{c} })

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.NotContains(t, mustGet(t, b, onGood.ID).Plan.Reason, "signal for")
	require.Contains(t, mustGet(t, b, onFallback.ID).Plan.Reason, "signal for "+c+": greenq-forecaster (electricitymaps down)")

	// The provider comes back with the same values: the window does not
	// move, but the reason stops naming the fallback.
	fallback.Source = "electricitymaps"
	require.NoError(t, b.s.PutSeries(ctx, fallback))
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.NotContains(t, mustGet(t, b, onFallback.ID).Plan.Reason, "signal for")
	// And it goes down again: the same window, now said to rest on the fallback.
	fallback.Source = "electricitymaps:last-good"
	require.NoError(t, b.s.PutSeries(ctx, fallback))
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Contains(t, mustGet(t, b, onFallback.ID).Plan.Reason, "signal for "+c+": electricitymaps:last-good")
}

func mustGet(t *testing.T, b *bundle, id string) *greenq.Job {
	t.Helper()
	j, err := b.s.Get(context.Background(), "", id)
	require.NoError(t, err)
	return j
}

// TestPlannerRunsOnSubmit: a submission wakes the running planner through
// Redis (as one on another replica would). The first job is planned by the
// round Run makes at start; the second only by the wake its submit
// publishes, since the next scheduled round is an hour away and nothing
// triggers the planner locally — without the wake it is never planned.
func TestPlannerRunsOnSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t), Replan: "@every 1h", Coalesce: time.Millisecond})
	require.NoError(t, err)
	first := b.submit(t, "alice")
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitPlanned(t, b, first.ID, "by the round at start")
	second := b.submit(t, "alice")
	waitPlanned(t, b, second.ID, "after the wake its submit published")
	cancel()
	require.NoError(t, <-done)
}

// waitPlanned polls job id until it is planned, for up to 10 s.
func waitPlanned(t *testing.T, b *bundle, id, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for mustGet(t, b, id).State != greenq.StatePlanned {
		require.True(t, time.Now().Before(deadline), "job %s was not planned %s", id, why)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPlannerLeavesBusyGPUsAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, c := b.regions[0], b.regions[1]
	require.NoError(t, b.s.PutSeries(ctx, hourly(a, 300, 300)))
	require.NoError(t, b.s.PutSeries(ctx, hourly(c, 300, 40, 3, 4)))
	// One GPU in c, taken by a released job over the whole clean window.
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w", Region: c, GPUs: 1}, time.Minute))
	held := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h"; r.DurationEstimateS = 7200 })
	b.plan(t, held.ID, c, t0.Add(3*time.Hour), false)
	b.force(t, held.ID, greenq.StateReleased)

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	for round := range 2 { // the second round reads the released job from the planner's cache
		j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h"; r.DurationEstimateS = 3600 })
		_, err = p.PlanOnce(ctx)
		require.NoError(t, err)
		got := mustGet(t, b, j.ID)
		inWindow := got.Plan.Region == c && got.Plan.Start.Before(t0.Add(5*time.Hour)) && got.Plan.End.After(t0.Add(3*time.Hour))
		require.False(t, inWindow, "round %d: planned onto the busy GPU: %s %s–%s", round, got.Plan.Region, got.Plan.Start, got.Plan.End)
		_, err = b.s.Cancel(ctx, "", j.ID)
		require.NoError(t, err)
	}
}

// TestPlannerHasOneConfig: the planner plans with its store's policy
// configuration, the one submit and explain use.
func TestPlannerHasOneConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Policy = policy.Config{Slot: 5 * time.Minute} })
	p, err := NewPlanner(b.s, PlannerConfig{})
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, p.plan.Config().Slot)
	require.Same(t, b.s.Planning(), p.plan, "one adapter for submit, the rounds and explain")
}
