package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

// fixedClock keeps planner_seconds at 0 so results compare equal.
func fixedClock() time.Time { return time.Time{} }

func fixtureConfig() Config {
	return Config{CarbonDir: "testdata/carbon", WorkloadFile: "testdata/workload.csv", Clock: fixedClock}
}

// checkPlacements asserts the invariants every placement must hold.
// tHelper is what checkPlacements needs of *testing.T and *rapid.T.
type tHelper interface {
	require.TestingT
	Helper()
}

func checkPlacements(t tHelper, jobs []Job, ps []Placement, regions []string) {
	t.Helper()
	byJob := map[string][]Placement{}
	for _, p := range ps {
		byJob[p.JobID] = append(byJob[p.JobID], p)
	}
	require.Len(t, byJob, len(jobs))
	for _, j := range jobs {
		segs := byJob[j.ID]
		require.NotEmpty(t, segs, j.ID)
		var total time.Duration
		for i, p := range segs {
			require.False(t, p.Start.Before(j.Submit), "%s starts before submit", j.ID)
			require.True(t, p.End.After(p.Start), j.ID)
			if i > 0 {
				require.False(t, p.Start.Before(segs[i-1].End), "%s segments overlap", j.ID)
			}
			allowed := j.Regions
			if len(allowed) == 0 {
				allowed = regions
			}
			require.Contains(t, allowed, p.Region, j.ID)
			total += p.End.Sub(p.Start)
			if !j.Interruptible {
				require.Len(t, segs, 1, j.ID)
			}
		}
		require.Equal(t, j.Duration, total, "%s runs the wrong length", j.ID)
		if !j.Deadline.Before(j.Submit.Add(j.Duration)) {
			require.False(t, segs[len(segs)-1].End.After(j.Deadline), "%s misses a feasible deadline", j.ID)
		}
	}
}

func TestRunFixture(t *testing.T) {
	t.Parallel()
	var decisions []Decision
	cfg := fixtureConfig()
	cfg.OnDecision = func(d Decision) { decisions = append(decisions, d) }
	var calls int
	res, err := Run(context.Background(), cfg, func(done, total int) { calls++; require.LessOrEqual(t, done, total) })
	require.NoError(t, err)
	require.Positive(t, calls)
	jobs, err := ReadWorkloadFile("testdata/workload.csv")
	require.NoError(t, err)
	require.Equal(t, 8, res.Jobs)
	require.Equal(t, []string{"GB", "US-CAL-CISO"}, res.Regions)
	checkPlacements(t, jobs, res.Placements, res.Regions)
	p := res.Policies
	require.Equal(t, 1, p.Now.DeadlineMisses, "only the infeasible job misses")
	require.Equal(t, 1, p.GreenQ.DeadlineMisses)
	require.Equal(t, 1, p.Oracle.DeadlineMisses)
	require.True(t, *p.Oracle.Exact)
	require.LessOrEqual(t, p.Oracle.GCO2, p.GreenQ.GCO2+1e-6)
	require.LessOrEqual(t, p.Oracle.GCO2, p.Now.GCO2+1e-6)
	require.Less(t, p.Oracle.GCO2, p.Now.GCO2, "the fixture leaves room to save")
	require.Zero(t, p.GreenQ.PlannerFallbacks)
	require.InDelta(t, p.Now.KWh, p.Oracle.KWh, 1e-6)
	require.InDelta(t, p.Now.KWh, p.GreenQ.KWh, 1e-6)
	require.Zero(t, p.Now.MeanDelayS)
	for i := 1; i < len(decisions); i++ {
		require.False(t, decisions[i].At.Before(decisions[i-1].At), "decisions are in time order")
	}

	// The JSON carries the fields of the contract.
	b, err := json.Marshal(res)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	pol := m["policies"].(map[string]any)
	for _, name := range []string{"now", "greenq", "reference", "oracle"} {
		for _, f := range []string{"gco2", "deadline_misses", "mean_delay_s"} {
			require.Contains(t, pol[name], f, name)
		}
	}
	require.Contains(t, pol["greenq"], "planner_seconds")
	require.Equal(t, true, pol["oracle"].(map[string]any)["exact"])
	require.Contains(t, m, "fraction_of_oracle_savings")
	require.Contains(t, pol["reference"], "fraction_of_oracle_savings")
	checkPlacements(t, jobs, res.ReferencePlacements, res.Regions)
	require.Equal(t, 1, p.Reference.DeadlineMisses, "only the infeasible job misses")

	var tbl bytes.Buffer
	require.NoError(t, res.WriteTable(&tbl))
	require.Contains(t, tbl.String(), "oracle")
	require.Contains(t, tbl.String(), "of the oracle's savings")
	require.Contains(t, tbl.String(), "reference")
}

func TestRunDeterministic(t *testing.T) {
	t.Parallel()
	run := func() (Result, string) {
		res, err := Run(context.Background(), fixtureConfig(), nil)
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, WritePlacements(&b, res.Placements))
		return res, b.String()
	}
	r1, p1 := run()
	r2, p2 := run()
	require.Equal(t, r1, r2)
	require.Equal(t, p1, p2)
	require.Contains(t, p1, "id,region,start_utc,end_utc\n")
}

// TestNoFuture rewrites every region's actual series from T on and checks
// that every decision made before T is unchanged.
func TestNoFuture(t *testing.T) {
	t.Parallel()
	carbon, err := ReadCarbonDir("testdata/carbon")
	require.NoError(t, err)
	vintages, err := ReadForecastsDir("testdata/forecasts")
	require.NoError(t, err)
	cut := time.Date(2023, 3, 15, 2, 0, 0, 0, time.UTC)
	rewritten := map[string]forecast.Series{}
	for r, s := range carbon {
		s.Points = slices.Clone(s.Points)
		for i := range s.Points {
			if !s.Points[i].Start.Before(cut) {
				s.Points[i].GCO2PerKWh = 900 - s.Points[i].GCO2PerKWh*0.5 + float64(i%7)*40
			}
		}
		rewritten[r] = s
	}
	for _, tc := range []struct {
		name     string
		vintages map[string][]forecast.Series
	}{{"forecaster", nil}, {"vintages", vintages}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			record := func(c map[string]forecast.Series) []Decision {
				var ds []Decision
				cfg := fixtureConfig()
				cfg.Carbon, cfg.Forecasts = c, tc.vintages
				cfg.OnDecision = func(d Decision) { ds = append(ds, d) }
				_, err := Run(context.Background(), cfg, nil)
				require.NoError(t, err)
				return ds
			}
			before, after := record(carbon), record(rewritten)
			var n int
			for i, d := range before {
				if !d.At.Before(cut) {
					break
				}
				require.Equal(t, d, after[i])
				n++
			}
			require.Greater(t, n, 10, "the test must compare some decisions")
			require.NotEqual(t, before, after, "decisions after the cut see the rewritten history")
		})
	}
}

func TestRunVintagesAndNoise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"forecasts", func(c *Config) { c.ForecastsDir = "testdata/forecasts" }},
		{"noise", func(c *Config) { c.ForecastNoise = 0.05 }},
		{"plan once", func(c *Config) { c.Tick = -1 }},
		{"pue", func(c *Config) { c.PUE = map[string]float64{"GB": 1.5} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fixtureConfig()
			tc.mod(&cfg)
			res, err := Run(context.Background(), cfg, nil)
			require.NoError(t, err)
			jobs, _ := ReadWorkloadFile("testdata/workload.csv")
			checkPlacements(t, jobs, res.Placements, res.Regions)
			require.LessOrEqual(t, res.Policies.Oracle.GCO2, res.Policies.GreenQ.GCO2+1e-6)
		})
	}
}

func TestPlannerSeriesUsesLatestVintage(t *testing.T) {
	t.Parallel()
	cfg := fixtureConfig()
	cfg.ForecastsDir = "testdata/forecasts"
	s, err := load(cfg.WithDefaults())
	require.NoError(t, err)
	gb := s.regions[s.byName["GB"]]
	now := time.Date(2023, 3, 14, 10, 0, 0, 0, time.UTC)
	ser := s.plannerSeries(gb, now, now.Add(72*time.Hour))
	require.Equal(t, time.Date(2023, 3, 14, 9, 31, 0, 0, time.UTC), ser.IssuedAt)
	require.Equal(t, now, ser.Points[0].Start)
	require.Equal(t, now.Add(72*time.Hour), ser.Points[len(ser.Points)-1].End)
	require.NoError(t, ser.Validate())
	// Beyond the vintage's 48 h the forecaster takes over.
	last := ser.Points[len(ser.Points)-1]
	require.Equal(t, forecast.KindEstimate, last.Kind)
	p, ok := ser.At(now.Add(time.Hour))
	require.True(t, ok)
	require.Equal(t, forecast.KindForecast, p.Kind)
	// Before the first vintage: forecaster only.
	early := s.plannerSeries(gb, time.Date(2023, 3, 14, 3, 0, 0, 0, time.UTC), now)
	require.Equal(t, "greenq-forecaster", early.Source)
}

func TestRunCapacity(t *testing.T) {
	t.Parallel()
	cfg := fixtureConfig()
	cfg.Capacity = map[string]int{"GB": 4, "US-CAL-CISO": 4}
	res, err := Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	require.False(t, *res.Policies.Oracle.Exact)
	free, err := Run(context.Background(), fixtureConfig(), nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Policies.Oracle.GCO2, free.Policies.Oracle.GCO2-1e-6, "the bound is at least the unbounded optimum")
	require.LessOrEqual(t, res.Policies.Oracle.GCO2, res.Policies.GreenQ.GCO2+1e-6)
	// Jobs that fit never exceed a region's GPUs (tight needs 8 > 4: it
	// runs as planned).
	jobs, _ := ReadWorkloadFile("testdata/workload.csv")
	gpus := map[string]int{}
	for _, j := range jobs {
		gpus[j.ID] = j.GPUs
	}
	for _, p := range res.Placements {
		if gpus[p.JobID] > 4 {
			continue
		}
		use := 0
		for _, q := range res.Placements {
			if gpus[q.JobID] <= 4 && q.Region == p.Region && !q.Start.After(p.Start) && q.End.After(p.Start) {
				use += gpus[q.JobID]
			}
		}
		require.LessOrEqual(t, use, 4, "%s at %s", p.Region, p.Start)
	}
}

func TestRunInputErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no carbon", func(c *Config) { c.CarbonDir = "" }, "carbon: is required"},
		{"no workload", func(c *Config) { c.WorkloadFile = "" }, "workload: is required"},
		{"unknown capacity region", func(c *Config) { c.Capacity = map[string]int{"SE": 1} }, "capacity: unknown region SE"},
		{"unknown pue region", func(c *Config) { c.PUE = map[string]float64{"SE": 1.2} }, "pue: unknown region SE"},
		{"unknown job region", func(c *Config) {
			c.WorkloadFile = ""
			c.Jobs = []Job{{ID: "a", Submit: time.Unix(0, 0), Duration: time.Hour, GPUs: 1, Deadline: time.Unix(7200, 0), Regions: []string{"SE"}}}
		}, `workload: job "a": unknown region SE`},
		{"noise with forecasts", func(c *Config) { c.ForecastNoise = 0.1; c.ForecastsDir = "testdata/forecasts" }, "forecast_noise: cannot be combined"},
		{"negative noise", func(c *Config) { c.ForecastNoise = -1 }, "forecast_noise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fixtureConfig()
			tc.mod(&cfg)
			_, err := Run(context.Background(), cfg, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, fixtureConfig(), nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestStepIntegral(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	s := forecast.Series{Points: []forecast.Point{
		{Start: t0, End: t0.Add(time.Hour), GCO2PerKWh: 100},
		{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), GCO2PerKWh: 200},
	}}
	f := newStepFn(s)
	h := int64(time.Hour)
	for _, tc := range []struct {
		a, b int64
		want float64
	}{
		{0, h, 100 * 3600},
		{h / 2, h + h/2, 150 * 3600},
		{-h, 0, 100 * 3600},        // before the data: first value
		{2 * h, 3 * h, 200 * 3600}, // after: last value
		{-h, 3 * h, 600 * 3600},    // across both ends
		{h, h, 0},
	} {
		got := f.integral(ns(t0)+tc.a, ns(t0)+tc.b)
		require.InDelta(t, tc.want, got, 1e-6)
	}
	require.InDelta(t, 150, f.mean(ns(t0)+h/2, ns(t0)+h+h/2), 1e-9)
	require.False(t, math.IsNaN(f.mean(ns(t0), ns(t0))))
}

// TestRunMisestimatedDurations: the planner is told Estimate, the job runs
// its real Duration from its planned start (a short estimate runs past
// its plan, a long one stops early); in this fixture every feasible
// deadline is still met.
func TestRunMisestimatedDurations(t *testing.T) {
	t.Parallel()
	base := fixtureConfig()
	jobs, err := ReadWorkloadFile(base.WorkloadFile)
	require.NoError(t, err)
	for _, f := range []float64{0.5, 1.05, 2} {
		cfg := base
		cfg.Jobs = make([]Job, len(jobs))
		for i, j := range jobs {
			j.Estimate = time.Duration(float64(j.Duration) * f).Round(time.Second)
			cfg.Jobs[i] = j
		}
		est := map[string]time.Duration{}
		for _, j := range cfg.Jobs {
			est[j.ID] = j.Estimate
		}
		first := map[string]bool{}
		cfg.OnDecision = func(d Decision) {
			var total time.Duration
			for _, w := range d.Segments {
				total += w.End.Sub(w.Start)
			}
			// The first plan is for the estimate; a paused job's later
			// ones for what is left of it.
			if !first[d.JobID] {
				first[d.JobID] = true
				require.Equal(t, est[d.JobID], total, "factor %g: %s", f, d.JobID)
			}
			require.LessOrEqual(t, total, est[d.JobID], "factor %g: %s", f, d.JobID)
		}
		res, err := Run(context.Background(), cfg, nil)
		require.NoError(t, err)
		checkPlacements(t, jobs, res.Placements, res.Regions) // real lengths
		require.Len(t, first, len(jobs))
	}
}
