package policy_test

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// genInput draws a small planning round over the fixture series: a few
// regions (some with capacity, busy GPUs, time-of-use prices), a few jobs
// (some interruptible, in a sweep, price-capped, with odd durations), and a
// now that may fall mid-slot.
func genInput(t *rapid.T, series []forecast.Series, maxJobs int, carbonPrice bool) policy.Input {
	now := t0.Add(time.Duration(rapid.IntRange(0, 24*60).Draw(t, "nowMin")) * time.Minute)
	nr := rapid.IntRange(1, 4).Draw(t, "regions")
	var regs []policy.Region
	for i := range nr {
		r := policy.Region{
			Name:   fmt.Sprintf("r%d", i),
			PUE:    rapid.SampledFrom([]float64{0, 1, 1.2}).Draw(t, "pue"),
			Series: series[rapid.IntRange(0, len(series)-1).Draw(t, "zone")],
			Price:  policy.PriceSchedule{USDPerGPUHour: float64(rapid.IntRange(1, 5).Draw(t, "price"))},
		}
		if rapid.Bool().Draw(t, "tou") {
			r.Price.TimeOfUse = []policy.TimeOfUsePrice{{FromHour: rapid.IntRange(0, 23).Draw(t, "from"), ToHour: rapid.IntRange(0, 23).Draw(t, "to"), USDPerGPUHour: float64(rapid.IntRange(1, 5).Draw(t, "touPrice"))}}
		}
		if rapid.Bool().Draw(t, "bounded") {
			r.Capacity = rapid.IntRange(1, 6).Draw(t, "capacity")
			if rapid.Bool().Draw(t, "machines") {
				// Machines of 1–4 GPUs; sometimes a larger one not up now.
				r.Capacity = 0
				for range rapid.IntRange(1, 3).Draw(t, "workers") {
					r.Workers = append(r.Workers, rapid.IntRange(1, 4).Draw(t, "workerGPUs"))
				}
				if rapid.Bool().Draw(t, "maxJob") {
					r.MaxJobGPUs = rapid.IntRange(1, 4).Draw(t, "maxJobGPUs")
				}
			}
			for range rapid.IntRange(0, 2).Draw(t, "busy") {
				st := now.Add(time.Duration(rapid.IntRange(-120, 20*60).Draw(t, "busyStart")) * time.Minute)
				r.Busy = append(r.Busy, policy.Usage{Start: st, End: st.Add(time.Duration(rapid.IntRange(1, 600).Draw(t, "busyLen")) * time.Minute), GPUs: rapid.IntRange(1, 4).Draw(t, "busyGPUs")})
			}
		}
		regs = append(regs, r)
	}
	cfg := policy.Config{MinSegment: rapid.SampledFrom([]time.Duration{0, 30 * time.Minute, time.Hour}).Draw(t, "minSeg")}
	if carbonPrice {
		cfg.CarbonPriceUSDPerTonne = rapid.SampledFrom([]float64{10, 1000, 1e6}).Draw(t, "carbonPrice")
	}
	nj := rapid.IntRange(1, maxJobs).Draw(t, "jobs")
	var jobs []policy.Job
	for i := range nj {
		d := time.Duration(rapid.IntRange(1, 8*60).Draw(t, "durMin")) * time.Minute
		if rapid.Bool().Draw(t, "roundDur") {
			d = d.Round(15*time.Minute) + 15*time.Minute
		}
		earliest := now.Add(time.Duration(rapid.IntRange(-120, 6*60).Draw(t, "earliestMin")) * time.Minute)
		j := policy.Job{
			ID:            fmt.Sprintf("j%d", i),
			GPUs:          rapid.IntRange(1, 4).Draw(t, "gpus"),
			Duration:      d,
			Earliest:      earliest,
			Deadline:      earliest.Add(d + time.Duration(rapid.IntRange(-120, 30*60).Draw(t, "slackMin"))*time.Minute),
			Interruptible: rapid.Bool().Draw(t, "interruptible"),
			PowerW:        rapid.SampledFrom([]float64{0, 250, 700}).Draw(t, "power"),
		}
		if rapid.Bool().Draw(t, "grouped") {
			j.Group = "sweep"
		}
		if rapid.IntRange(0, 3).Draw(t, "capped") == 0 {
			j.MaxPriceUSDPerGPUHour = float64(rapid.IntRange(1, 5).Draw(t, "maxPrice"))
		}
		if rapid.Bool().Draw(t, "restricted") {
			for _, r := range regs {
				if rapid.Bool().Draw(t, "allow") {
					j.Regions = append(j.Regions, r.Name)
				}
			}
			if len(j.Regions) == 0 {
				j.Regions = []string{regs[0].Name}
			}
		}
		if rapid.Bool().Draw(t, "home") {
			// Any region, allowed or not, may be home.
			j.Home = regs[rapid.IntRange(0, len(regs)-1).Draw(t, "homeRegion")].Name
		}
		jobs = append(jobs, j)
	}
	return policy.Input{Now: now, Jobs: jobs, Regions: regs, Config: cfg}
}

// allowedRegions returns the regions j may run in: those it names (or
// all), less those whose largest machine is smaller than j.
func allowedRegions(in policy.Input, j policy.Job) []policy.Region {
	var out []policy.Region
	for _, r := range in.Regions {
		if (len(j.Regions) == 0 || slices.Contains(j.Regions, r.Name)) && r.Fits(j.GPUs) {
			out = append(out, r)
		}
	}
	return out
}

func defaultMargin(cfg policy.Config, j policy.Job, earliest time.Time) time.Duration {
	cfg = cfg.WithDefaults()
	if cfg.SafetyMargin > 0 {
		return cfg.SafetyMargin
	}
	m := min(2*cfg.Slot, 5*time.Minute)
	if slack := j.Deadline.Sub(earliest) - j.Duration; m > slack/2 {
		m = slack / 2
	}
	return max(m, 0)
}

// objective is the planner's score of an estimate.
func objective(cfg policy.Config, g, cost float64) float64 {
	if cfg.CarbonPriceUSDPerTonne > 0 {
		return cost + cfg.CarbonPriceUSDPerTonne*g/1e6
	}
	return g
}

// windowPriced reports whether every slot a run of j in r over [s, e)
// touches is under j's price cap.
func windowPriced(cfg policy.Config, r policy.Region, j policy.Job, s, e time.Time) bool {
	slot := cfg.WithDefaults().Slot
	for k := s.Truncate(slot); k.Before(e); k = k.Add(slot) {
		if j.MaxPriceUSDPerGPUHour > 0 && r.Price.At(k) > j.MaxPriceUSDPerGPUHour {
			return false
		}
	}
	return true
}

// windowFits reports whether a run of j in r over [s, e) touches only slots
// with room and under its price cap, given other GPUs already used.
func windowFits(cfg policy.Config, r policy.Region, j policy.Job, s, e time.Time) bool {
	slot := cfg.WithDefaults().Slot
	for k := s.Truncate(slot); k.Before(e); k = k.Add(slot) {
		if j.MaxPriceUSDPerGPUHour > 0 && r.Price.At(k) > j.MaxPriceUSDPerGPUHour {
			return false
		}
		for _, cl := range sizeClasses(r) {
			if max(j.GPUs, 1) < cl.minGPUs {
				continue
			}
			used := 0
			for _, u := range r.Busy {
				if u.GPUs >= cl.minGPUs && u.Start.Before(k.Add(slot)) && u.End.After(k) {
					used += u.GPUs
				}
			}
			if used+max(j.GPUs, 1) > cl.gpus {
				return false
			}
		}
	}
	return true
}

// homeOf is the region job j's baseline runs in: its Home when that is a
// region of in, else its first allowed region ("" with none).
func homeOf(in policy.Input, j policy.Job) string {
	for _, r := range in.Regions {
		if j.Home != "" && r.Name == j.Home {
			return j.Home
		}
	}
	if allowed := allowedRegions(in, j); len(allowed) > 0 {
		return allowed[0].Name
	}
	return ""
}

// checkInvariants asserts what every plan must hold.
func checkInvariants(t *rapid.T, in policy.Input, res policy.Result) {
	cfg := in.Config.WithDefaults()
	require.Len(t, res.Assignments, len(in.Jobs))
	for i, a := range res.Assignments {
		j := in.Jobs[i]
		require.Equal(t, j.ID, a.JobID)
		earliest := in.Now
		if j.Earliest.After(earliest) {
			earliest = j.Earliest
		}
		if a.Region != "" || a.Held {
			require.Equal(t, homeOf(in, j), a.Baseline.Region, "%s: the baseline is the home region at once", j.ID)
		}
		if a.Region != "" {
			// The two savings add up to the saving.
			saved := a.Baseline.ExpectedGCO2 - a.ExpectedGCO2
			require.InDelta(t, saved, a.SavedByWaitingGCO2+a.SavedByMovingGCO2, 1e-9*(1+math.Abs(a.Baseline.ExpectedGCO2)), "%s: split", j.ID)
		}
		if a.Held {
			// Held only by a price cap that every allowed region's run at
			// once breaks: never run above it.
			require.Positive(t, j.MaxPriceUSDPerGPUHour, "%s held without a cap: %s", j.ID, a.Reason)
			require.Empty(t, a.Region)
			require.Empty(t, a.Segments)
			require.False(t, a.Urgent)
			require.Contains(t, a.Reason, "price cap")
			for _, r := range allowedRegions(in, j) {
				require.False(t, windowPriced(cfg, r, j, earliest, earliest.Add(j.Duration)), "%s held though %s at once is under the cap", j.ID, r.Name)
			}
			continue
		}
		require.NotEmpty(t, a.Segments)
		require.False(t, a.Start().Before(earliest), "%s starts %s before %s", j.ID, a.Start(), earliest)
		var total time.Duration
		for k, w := range a.Segments {
			require.True(t, w.End.After(w.Start))
			if k > 0 {
				require.False(t, w.Start.Before(a.Segments[k-1].End), "%s: segments overlap", j.ID)
			}
			if len(a.Segments) > 1 {
				require.GreaterOrEqual(t, w.End.Sub(w.Start), cfg.MinSegment, "%s: short segment", j.ID)
			}
			total += w.End.Sub(w.Start)
		}
		require.Equal(t, j.Duration, total, "%s: segments add to %s", j.ID, total)
		if !j.Interruptible {
			require.Len(t, a.Segments, 1)
		}
		allowed := allowedRegions(in, j)
		if len(allowed) == 0 {
			// Larger than every allowed region's largest machine: no region.
			require.Empty(t, a.Region, "%s", j.ID)
			require.True(t, a.Urgent)
			require.Contains(t, a.Reason, "more than the largest worker")
			continue
		}
		require.True(t, slices.ContainsFunc(allowed, func(r policy.Region) bool { return r.Name == a.Region }), "%s: region %q not allowed", j.ID, a.Region)
		require.NotEmpty(t, a.Reason)
		r := allowed[slices.IndexFunc(allowed, func(r policy.Region) bool { return r.Name == a.Region })]
		for _, w := range a.Segments {
			for k := w.Start.Truncate(cfg.Slot); k.Before(w.End); k = k.Add(cfg.Slot) {
				if j.MaxPriceUSDPerGPUHour > 0 {
					require.LessOrEqual(t, r.Price.At(k), j.MaxPriceUSDPerGPUHour, "%s: slot %s over the price cap (urgent %v)", j.ID, k, a.Urgent)
				}
			}
		}
		if a.Urgent {
			require.Equal(t, earliest, a.Start())
			require.Zero(t, a.SavedByWaitingGCO2, "%s: an urgent run waits for nothing", j.ID)
			continue
		}
		require.False(t, a.End().After(j.Deadline), "%s ends %s after deadline %s", j.ID, a.End(), j.Deadline)
		// The estimate is what the series says (the fixtures cover every run).
		power := j.PowerW
		if power <= 0 {
			power = cfg.DefaultPowerW
		}
		pue := r.PUE
		if pue <= 0 {
			pue = 1
		}
		var g float64
		for _, w := range a.Segments {
			m, cov := r.Series.Mean(w.Start, w.End)
			require.Equal(t, w.End.Sub(w.Start), cov)
			g += float64(j.GPUs) * power / 1000 * w.End.Sub(w.Start).Hours() * pue * m
		}
		require.InDelta(t, g, a.ExpectedGCO2, 1e-6*g+1e-9, "%s: estimate", j.ID)
	}
	checkCapacity(t, in, res)
}

func fixtureSeries(t *testing.T) []forecast.Series {
	var out []forecast.Series
	for _, z := range fixtureZones {
		out = append(out, loadSeries(t, z))
	}
	return out
}

func TestPlanProperties(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t, series, 8, rapid.Bool().Draw(t, "carbonMode"))
		res := policy.Plan(in)
		checkInvariants(t, in, res)
		require.Equal(t, res, policy.Plan(in), "not deterministic")

		// Re-plan later with each job's plan as Current: still valid.
		later := in
		later.Now = in.Now.Add(time.Duration(rapid.IntRange(0, 180).Draw(t, "laterMin")) * time.Minute)
		later.Jobs = slices.Clone(in.Jobs)
		for i := range later.Jobs {
			a := res.Assignments[i]
			later.Jobs[i].Current = &a
		}
		checkInvariants(t, later, policy.Plan(later))

		// Without capacity limits or a current plan, jobs are independent:
		// never worse than run-now where run-now is allowed.
		free := in
		free.Regions = slices.Clone(in.Regions)
		for i := range free.Regions {
			r := &free.Regions[i]
			if r.MaxJobGPUs == 0 {
				r.MaxJobGPUs = slices.Max(append([]int{0}, r.Workers...))
			}
			r.Capacity, r.Busy, r.Workers = 0, nil, nil
		}
		checkNotWorseThanNow(t, free, policy.Plan(free))
	})
}

// checkNotWorseThanNow asserts that no job's plan scores worse than its
// run-now baseline when that baseline was itself a valid plan.
func checkNotWorseThanNow(t *rapid.T, in policy.Input, res policy.Result) {
	cfg := in.Config.WithDefaults()
	for i, a := range res.Assignments {
		j := in.Jobs[i]
		earliest := in.Now
		if j.Earliest.After(earliest) {
			earliest = j.Earliest
		}
		allowed := allowedRegions(in, j)
		if len(allowed) == 0 {
			continue
		}
		base := allowed[0]
		if h := homeOf(in, j); h != base.Name {
			i := slices.IndexFunc(allowed, func(r policy.Region) bool { return r.Name == h })
			if i < 0 {
				continue // home is not allowed: its run-now is no valid plan
			}
			base = allowed[i]
		}
		end := earliest.Add(j.Duration)
		if end.After(j.Deadline.Add(-defaultMargin(cfg, j, earliest))) || !windowFits(cfg, base, j, earliest, end) {
			continue
		}
		require.False(t, a.Urgent, "%s: %s", j.ID, a.Reason)
		require.Equal(t, base.Name, a.Baseline.Region)
		got := objective(cfg, a.ExpectedGCO2, a.ExpectedCostUSD)
		now := objective(cfg, a.Baseline.ExpectedGCO2, a.Baseline.ExpectedCostUSD)
		require.LessOrEqual(t, got, now+1e-9*math.Abs(now), "%s: %s", j.ID, a.Reason)
	}
}

// TestPlanSoleJobProperties checks, for a job alone, that it is urgent only
// when no contiguous window in any allowed region fits its deadline,
// capacity and price cap, and that it never scores worse than a valid
// run-now.
func TestPlanSoleJobProperties(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t, series, 1, rapid.Bool().Draw(t, "carbonMode"))
		res := policy.Plan(in)
		checkInvariants(t, in, res)
		checkNotWorseThanNow(t, in, res)
		j, a := in.Jobs[0], res.Assignments[0]
		if !a.Urgent {
			return
		}
		cfg := in.Config.WithDefaults()
		earliest := in.Now
		if j.Earliest.After(earliest) {
			earliest = j.Earliest
		}
		for _, r := range allowedRegions(in, j) {
			starts := []time.Time{earliest}
			for s := earliest.Truncate(cfg.Slot).Add(cfg.Slot); !s.Add(j.Duration).After(j.Deadline); s = s.Add(cfg.Slot) {
				starts = append(starts, s)
			}
			for _, s := range starts {
				if !s.Add(j.Duration).After(j.Deadline) && windowFits(cfg, r, j, s, s.Add(j.Duration)) {
					t.Fatalf("%s urgent (%s) but %s from %s fits", j.ID, a.Reason, r.Name, s)
				}
			}
		}
	})
}
