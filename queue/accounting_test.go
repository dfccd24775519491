package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestMaxPriceRefusedAtSubmit: a cap below every price any allowed
// region's schedule ever charges is refused, naming the field; a cap that
// some hour of a time-of-use schedule meets is accepted.
func TestMaxPriceRefusedAtSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		// Region 0: $2, region 1: $5 by day, $1 from 22:00 to 06:00.
		c.Regions[1].GPUPriceUSDPerHour = 5
		c.Regions[1].PriceSchedule = []greenq.PriceStep{{FromHour: 22, ToHour: 6, USDPerGPUHour: 1}}
	})
	ctx := context.Background()
	submit := func(max float64, regions ...string) error {
		_, err := b.s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h",
			MaxPriceUSDPerGPUHour: max, Regions: regions})
		return err
	}
	err := submit(0.5)
	requireCode(t, err, greenq.CodeInvalidArgument)
	var ge *greenq.Error
	require.True(t, errors.As(err, &ge))
	require.Equal(t, "max_price_usd_per_gpu_hour", ge.Field)
	require.Contains(t, ge.Message, "could never run")
	requireCode(t, submit(1.5, b.regions[0]), greenq.CodeInvalidArgument)
	require.NoError(t, submit(1.5), "region 1 is $1 at night")
	require.NoError(t, submit(1.5, b.regions[1]))
	require.NoError(t, submit(2, b.regions[0]))
	require.NoError(t, submit(0), "no cap")
}

// TestMaxPriceHeldThenExpired: a job whose only window under its cap lies
// after its deadline is never released above the cap: it stays pending
// with a held plan that says why, and expires at its deadline with that
// reason.
func TestMaxPriceHeldThenExpired(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Regions[0].GPUPriceUSDPerHour = 5
		c.Regions[0].PriceSchedule = []greenq.PriceStep{{FromHour: 22, ToHour: 6, USDPerGPUHour: 1}}
	})
	ctx := context.Background()
	a := b.regions[0]
	require.NoError(t, b.s.PutSeries(ctx, hourly(a, 300, 300)))
	// t0 is 10:00; the cheap hours start at 22:00, after the deadline.
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) {
		r.Deadline, r.DurationEstimateS, r.Regions, r.MaxPriceUSDPerGPUHour = "3h", 1800, []string{a}, 2
	})
	require.NotNil(t, j.Plan, "the provisional plan says it is held")
	require.True(t, j.Plan.Held, j.Plan.Reason)

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	got, err := b.s.Get(ctx, "", j.ID)
	require.NoError(t, err)
	require.Equal(t, greenq.StatePending, got.State, "held, not planned")
	require.True(t, got.Plan.Held)
	require.Empty(t, got.Plan.Region)
	require.Contains(t, got.Plan.Reason, "price cap of $2.00/GPU-h")

	fe := &fakeEnqueuer{}
	rel, err := NewReleaser(b.s, ReleaserConfig{Client: fe, Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = rel.ReleaseDue(ctx)
	require.NoError(t, err)
	require.Empty(t, fe.tasks, "never released above the cap")

	b.clk.Add(3*time.Hour + time.Second)
	_, err = rel.ReleaseDue(ctx)
	require.NoError(t, err)
	got, err = b.s.Get(ctx, "", j.ID)
	require.NoError(t, err)
	require.Equal(t, greenq.StateExpired, got.State)
	require.Contains(t, got.Error, "no window under its price cap of $2.00/GPU-h")
	require.Empty(t, fe.tasks)
}

// TestRegionFactsShared: what the planner publishes is what a store with
// no configuration of its own (a worker's) reads.
func TestRegionFactsShared(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Regions[0].PUE = 1.3
		c.Regions[0].PriceSchedule = []greenq.PriceStep{{FromHour: 0, ToHour: 6, USDPerGPUHour: 0.5}}
		c.Regions[0].EmbodiedGCO2PerGPUHour = 12
	})
	ctx := context.Background()
	worker, err := NewStore(b.rdb, Config{Prefix: b.prefix})
	require.NoError(t, err)
	_, ok, err := worker.SharedRegions(ctx)
	require.NoError(t, err)
	require.False(t, ok, "nothing shared yet")

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	f, ok, err := worker.SharedRegions(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	r, ok := f.Region(b.regions[0])
	require.True(t, ok)
	require.Equal(t, 1.3, r.PUE)
	require.Equal(t, 12.0, r.EmbodiedGCO2PerGPUHour)
	require.Equal(t, []greenq.PriceStep{{FromHour: 0, ToHour: 6, USDPerGPUHour: 0.5}}, r.PriceSchedule)
	require.Equal(t, t0, f.PublishedAt)
}

// TestHomeRegion: the home region defaults to the first of the job's
// regions, else the first configured one, must be allowed, and is where
// the plan's baseline runs whatever the order of the regions.
func TestHomeRegion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, c := b.regions[0], b.regions[1]
	require.NoError(t, b.s.PutSeries(ctx, hourly(a, 300, 300)))
	require.NoError(t, b.s.PutSeries(ctx, hourly(c, 100, 100)))
	j := b.submit(t, "alice")
	require.Equal(t, a, j.HomeRegion)
	j = b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Regions = []string{c, a} })
	require.Equal(t, c, j.HomeRegion)
	require.Equal(t, c, j.Plan.Baseline.Region)

	j = b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Regions, r.HomeRegion = []string{c, a}, a })
	require.Equal(t, a, j.HomeRegion)
	require.Equal(t, a, j.Plan.Baseline.Region, "the home region, not the first listed")
	require.Equal(t, c, j.Plan.Region)
	require.InDelta(t, j.Plan.Baseline.ExpectedGCO2-j.Plan.ExpectedGCO2, j.Plan.SavedByWaitingGCO2+j.Plan.SavedByMovingGCO2, 1e-9)
	require.InDelta(t, 0, j.Plan.SavedByWaitingGCO2, 1e-9, "a flat series: waiting saves nothing")

	_, err := b.s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", Regions: []string{c}, HomeRegion: a})
	var ge *greenq.Error
	require.True(t, errors.As(err, &ge), "%v", err)
	require.Equal(t, "home_region", ge.Field)
	_, err = b.s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", HomeRegion: "mars"})
	require.True(t, errors.As(err, &ge), "%v", err)
	require.Equal(t, "home_region", ge.Field)
}

// TestRestateSchedule: a receipt resting on a forecast is filed at
// finish; Restate rewrites it and takes it off once it rests on actuals;
// candidates older than the window are forgotten.
func TestRestateSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	finish := func(src string) *greenq.Job {
		j := b.submit(t, "alice")
		b.force(t, j.ID, greenq.StateRunning)
		rc := &greenq.Receipt{EnergyKWh: 1, PUE: 1, IntensityGCO2PerKWh: 100, GCO2: 100, IntensitySource: src}
		got, err := b.s.Finish(ctx, j.ID, FinishRequest{State: greenq.StateSucceeded, Receipt: rc,
			Segment: greenq.RunSegment{Region: b.regions[0], Start: b.clk.Now(), End: b.clk.Now().Add(time.Minute), EnergyKWh: 1}})
		require.NoError(t, err)
		return got
	}
	fc := finish("file:actual+forecast")
	finish("file:actual") // not filed
	cands, err := b.s.RestateCandidates(ctx, t0.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, cands, 1)
	require.Equal(t, fc.ID, cands[0].ID)

	got, err := b.s.Restate(ctx, fc.ID, func(j *greenq.Job) *greenq.Receipt { return nil })
	require.NoError(t, err)
	require.Equal(t, "file:actual+forecast", got.Receipt.IntensitySource, "nil leaves it")
	got, err = b.s.Restate(ctx, fc.ID, func(j *greenq.Job) *greenq.Receipt {
		rc := *j.Receipt
		rc.IntensitySource = "file:actual"
		return &rc
	})
	require.NoError(t, err)
	require.Equal(t, "file:actual", got.Receipt.IntensitySource)
	cands, err = b.s.RestateCandidates(ctx, t0.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, cands, "restated from actuals: done")

	old := finish("electricitymaps:forecast")
	cands, err = b.s.RestateCandidates(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, cands, "finished before the window: forgotten")
	got, err = b.s.Get(ctx, "", old.ID)
	require.NoError(t, err)
	require.Equal(t, "electricitymaps:forecast", got.Receipt.IntensitySource, "and labelled as resting on a forecast")
}
