package policy_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// flat returns a series of value v over [from, from+h hours), hourly.
func flat(region string, from time.Time, h int, v float64) forecast.Series {
	return hourly(region, from, func(int) float64 { return v }, h)
}

func hourly(region string, from time.Time, f func(int) float64, h int) forecast.Series {
	s := forecast.Series{Region: region, Signal: forecast.SignalAverage}
	for i := range h {
		st := from.Add(time.Duration(i) * time.Hour)
		s.Points = append(s.Points, forecast.Point{Start: st, End: st.Add(time.Hour), GCO2PerKWh: f(i), Kind: forecast.KindForecast})
	}
	return s
}

// bruteBest returns the slot-aligned start in [from, latest] with the least
// mean intensity of s over a run of d (the earliest on a tie).
func bruteBest(s forecast.Series, from, latest time.Time, d, slot time.Duration) (time.Time, float64) {
	best, bm := time.Time{}, math.Inf(1)
	for t := from; !t.After(latest); t = t.Add(slot) {
		m, _ := s.Mean(t, t.Add(d))
		if m < bm-1e-9 {
			best, bm = t, m
		}
	}
	return best, bm
}

func TestPlanPicksGreenestWindowAndRegion(t *testing.T) {
	t.Parallel()
	regs := fixtureRegions(t, 4)
	now := t0.Add(6 * time.Hour)
	tests := []struct {
		name    string
		regions []string
		d       time.Duration
		within  time.Duration
	}{
		{"one region short job", []string{regs[0].Name}, time.Hour, 24 * time.Hour},
		{"one region long job", []string{regs[1].Name}, 7*time.Hour + 30*time.Minute, 40 * time.Hour},
		{"two regions", []string{regs[0].Name, regs[2].Name}, 3 * time.Hour, 30 * time.Hour},
		{"all regions", nil, 2 * time.Hour, 20 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := policy.Job{ID: "a", GPUs: 2, Duration: tc.d, Deadline: now.Add(tc.within), Regions: tc.regions}
			cfg := policy.Config{SafetyMargin: 30 * time.Minute}
			res := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs, Config: cfg})
			require.Len(t, res.Assignments, 1)
			a := res.Assignments[0]
			require.False(t, a.Urgent)

			// Brute force over every allowed region and slot.
			latest := job.Deadline.Add(-cfg.SafetyMargin - tc.d)
			bestG, bestRegion, bestStart := math.Inf(1), "", time.Time{}
			for _, r := range regs {
				if tc.regions != nil && !contains(tc.regions, r.Name) {
					continue
				}
				st, m := bruteBest(r.Series, now, latest, tc.d, 15*time.Minute)
				g := 2 * 0.3 * tc.d.Hours() * r.PUE * m
				if g < bestG-1e-9 {
					bestG, bestRegion, bestStart = g, r.Name, st
				}
			}
			require.Equal(t, bestRegion, a.Region)
			require.Equal(t, bestStart, a.Start())
			require.InDelta(t, bestG, a.ExpectedGCO2, 1e-6*bestG)
			require.Equal(t, a.Start().Add(tc.d), a.End())
			require.LessOrEqual(t, a.ExpectedGCO2, a.Baseline.ExpectedGCO2+1e-9)
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func TestPlanDeadlines(t *testing.T) {
	t.Parallel()
	now := t0.Add(90 * time.Minute).Add(7 * time.Minute) // mid-slot on purpose
	regs := []policy.Region{{Name: "a", Series: hourly("a", t0, func(i int) float64 { return float64(100 + 10*(i%24)) }, 96)}}
	tests := []struct {
		name       string
		job        policy.Job
		urgent     bool
		wantStart  time.Time
		reasonPart string
	}{
		{
			name:       "too late is urgent and starts now",
			job:        policy.Job{ID: "late", GPUs: 1, Duration: 3 * time.Hour, Deadline: now.Add(2 * time.Hour)},
			urgent:     true,
			wantStart:  now,
			reasonPart: "cannot finish by the deadline (needs 3h, 2h left): released at once in a",
		},
		{
			name:      "deadline already passed",
			job:       policy.Job{ID: "past", GPUs: 1, Duration: time.Hour, Deadline: now.Add(-time.Hour)},
			urgent:    true,
			wantStart: now,
		},
		{
			name:       "exactly fits: runs now, margin dropped",
			job:        policy.Job{ID: "tight", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(2 * time.Hour)},
			wantStart:  now,
			reasonPart: "run now in a",
		},
		{
			name:      "earliest in the future is respected",
			job:       policy.Job{ID: "later", GPUs: 1, Duration: time.Hour, Earliest: now.Add(5 * time.Hour), Deadline: now.Add(6*time.Hour + 30*time.Minute)},
			wantStart: now.Add(5 * time.Hour),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{tc.job}, Regions: regs})
			a := res.Assignments[0]
			require.Equal(t, tc.urgent, a.Urgent, a.Reason)
			require.Equal(t, tc.wantStart, a.Start())
			require.Equal(t, tc.job.Duration, a.End().Sub(a.Start()))
			if !tc.urgent {
				require.False(t, a.End().After(tc.job.Deadline))
			}
			require.Contains(t, a.Reason, tc.reasonPart)
			if tc.urgent {
				require.Equal(t, now, policy.ReleaseAt(a, now))
			}
		})
	}
}

func TestPlanSafetyMargin(t *testing.T) {
	t.Parallel()
	now := t0
	// Intensity falls all day: the best run is the last one allowed.
	regs := []policy.Region{{Name: "a", Series: hourly("a", t0, func(i int) float64 { return float64(500 - 5*i) }, 96)}}
	job := policy.Job{ID: "j", GPUs: 1, Duration: 4 * time.Hour, Deadline: now.Add(24 * time.Hour)}
	// Default margin: min(2 slots, 5m), at most half the slack; the run ends
	// on it (starting mid-slot when need be) as intensity falls minute by
	// minute.
	fine := forecast.Series{Region: "a", Signal: forecast.SignalAverage}
	for i := range 48 * 60 {
		st := t0.Add(time.Duration(i) * time.Minute)
		fine.Points = append(fine.Points, forecast.Point{Start: st, End: st.Add(time.Minute), GCO2PerKWh: float64(5000 - i), Kind: forecast.KindForecast})
	}
	for _, tc := range []struct {
		slot, d, wantMargin time.Duration
	}{
		{time.Minute, 4 * time.Hour, 2 * time.Minute},
		{15 * time.Minute, 4*time.Hour + 10*time.Minute, 5 * time.Minute}, // starting mid-slot
		{15 * time.Minute, 24*time.Hour - 6*time.Minute, 3 * time.Minute}, // half the slack
		{10 * time.Second, 20 * time.Minute, 20 * time.Second},
	} {
		j := job
		j.Duration = tc.d
		res := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{j}, Regions: []policy.Region{{Name: "a", Series: fine}}, Config: policy.Config{Slot: tc.slot}})
		require.Equal(t, j.Deadline.Add(-tc.wantMargin), res.Assignments[0].End(), "slot %s, run %s", tc.slot, tc.d)
	}

	res := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs, Config: policy.Config{SafetyMargin: 2 * time.Hour}})
	require.Equal(t, job.Deadline.Add(-2*time.Hour), res.Assignments[0].End())
}

func TestPlanPrice(t *testing.T) {
	t.Parallel()
	now := t0
	night := policy.PriceSchedule{USDPerGPUHour: 4, TimeOfUse: []policy.TimeOfUsePrice{{FromHour: 22, ToHour: 6, USDPerGPUHour: 1}}}
	clean := flat("clean", t0, 96, 50)
	dirty := flat("dirty", t0, 96, 500)
	tests := []struct {
		name     string
		regions  []policy.Region
		job      policy.Job
		cfg      policy.Config
		region   string
		startIn  [2]int // allowed start hours (UTC), [from, to)
		urgent   bool
		held     bool
		reasonIn string
	}{
		{
			name: "time-of-use cap keeps the run in cheap hours",
			// Cleanest at noon, but noon is dear: the cheap hours end at
			// 06:00, so the best capped run is 04:00–06:00.
			regions: []policy.Region{{Name: "tou", Price: night, Series: hourly("tou", t0, func(i int) float64 { return float64(100 + 2*abs(12-i%24)) }, 96)}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(20 * time.Hour), MaxPriceUSDPerGPUHour: 2},
			region:  "tou", startIn: [2]int{4, 5},
		},
		{
			name:    "cap excludes the dear clean region",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour), MaxPriceUSDPerGPUHour: 3},
			region:  "dirty", startIn: [2]int{0, 24},
		},
		{
			name:    "no carbon price: least emissions even if dear",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour)},
			region:  "clean", startIn: [2]int{0, 24},
		},
		{
			// 1 GPU × 300 W × 1h = 0.3 kWh; 450 g/kWh apart = 135 g = $0.0135
			// at $100/t, far less than the $7 price gap.
			name:    "low carbon price: money wins",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour), Regions: []string{"clean", "dirty"}},
			cfg:     policy.Config{CarbonPriceUSDPerTonne: 100},
			region:  "dirty", startIn: [2]int{0, 1},
			reasonIn: "run now in dirty instead of clean to cut cost and carbon by 78% (150 g, $2.00 vs 15 g, $9.00 now)",
		},
		{
			// The home region, not the order of Regions, is the baseline.
			name:    "home region is the baseline whatever the order",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour), Regions: []string{"clean", "dirty"}, Home: "dirty"},
			cfg:     policy.Config{CarbonPriceUSDPerTonne: 100},
			region:  "dirty", startIn: [2]int{0, 1},
			reasonIn: "run now in dirty: no allowed region or window is better on cost and carbon",
		},
		{
			name:    "huge carbon price: carbon wins",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour), Regions: []string{"dirty", "clean"}},
			cfg:     policy.Config{CarbonPriceUSDPerTonne: 1e6},
			region:  "clean", startIn: [2]int{0, 1},
		},
		{
			// The cap is a limit: never run above it, not even at once.
			name:    "nothing under the cap: held, says why",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(10 * time.Hour), MaxPriceUSDPerGPUHour: 3},
			held:    true, reasonIn: "no window before the deadline is under the price cap of $3.00/GPU-h",
		},
		{
			name:    "deadline out of reach and over the cap: held, not released",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(time.Hour), MaxPriceUSDPerGPUHour: 3},
			held:    true, reasonIn: "cannot finish by the deadline, and running at once is over the price cap",
		},
		{
			name:    "deadline out of reach: urgent in a region under the cap",
			regions: []policy.Region{{Name: "clean", Price: policy.PriceSchedule{USDPerGPUHour: 9}, Series: clean}, {Name: "dirty", Price: policy.PriceSchedule{USDPerGPUHour: 2}, Series: dirty}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(time.Hour), MaxPriceUSDPerGPUHour: 3},
			region:  "dirty", startIn: [2]int{0, 1}, urgent: true, reasonIn: "cannot finish by the deadline",
		},
		{
			// Cheap only from 22:00: the urgent run now would be dear.
			name:    "urgent never breaks a time-of-use cap",
			regions: []policy.Region{{Name: "tou", Price: night, Series: clean}},
			job:     policy.Job{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Earliest: now.Add(12 * time.Hour), Deadline: now.Add(13 * time.Hour), MaxPriceUSDPerGPUHour: 2},
			held:    true, reasonIn: "over the price cap",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{tc.job}, Regions: tc.regions, Config: tc.cfg}).Assignments[0]
			require.Equal(t, tc.region, a.Region, a.Reason)
			require.Equal(t, tc.urgent, a.Urgent, a.Reason)
			require.Equal(t, tc.held, a.Held, a.Reason)
			if tc.held {
				require.Empty(t, a.Segments, "a held job has no window")
				require.Contains(t, a.Reason, tc.reasonIn)
				return
			}
			h := int(a.Start().Sub(t0).Hours())
			require.True(t, h >= tc.startIn[0] && h < tc.startIn[1], "start hour %d, reason %q", h, a.Reason)
			require.Contains(t, a.Reason, tc.reasonIn)
		})
	}
}

func TestPlanMissingData(t *testing.T) {
	t.Parallel()
	now := t0
	regs := []policy.Region{
		{Name: "none"}, // no signal at all
		{Name: "gappy", Series: flat("gappy", t0, 3, 80)}, // covers 3h only
		{Name: "full", Series: flat("full", t0, 96, 200)},
	}
	job := policy.Job{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(20 * time.Hour)}
	a := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs}).Assignments[0]
	require.False(t, a.Urgent)
	// Gappy counts at 80 everywhere, "none" at the mean of the others (140).
	require.Equal(t, "gappy", a.Region)
	require.InDelta(t, 0.6*80, a.ExpectedGCO2, 1e-9)
	require.InDelta(t, 0.6*140, a.Baseline.ExpectedGCO2, 1e-9)

	a = policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs[:1]}).Assignments[0]
	require.False(t, a.Urgent)
	require.Equal(t, now, a.Start())
}

func TestPlanCapacity(t *testing.T) {
	t.Parallel()
	now := t0
	// One dip at hours 10–12.
	dip := hourly("a", t0, func(i int) float64 {
		if i%24 >= 10 && i%24 < 12 {
			return 50
		}
		return 300
	}, 96)
	t.Run("least slack first: a loose job does not strand a tight one", func(t *testing.T) {
		t.Parallel()
		regs := []policy.Region{{Name: "a", Capacity: 1, Series: dip}}
		jobs := []policy.Job{
			// Listed first, loose: would take the dip first-come.
			{ID: "loose", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(40 * time.Hour)},
			// Only fits 9:00–12:00 (ends by 12:00 with margin dropped).
			{ID: "tight", GPUs: 1, Duration: 2 * time.Hour, Earliest: now.Add(10 * time.Hour), Deadline: now.Add(12 * time.Hour)},
		}
		res := policy.Plan(policy.Input{Now: now, Jobs: jobs, Regions: regs})
		loose, tight := res.Assignments[0], res.Assignments[1]
		require.False(t, tight.Urgent, tight.Reason)
		require.False(t, loose.Urgent, loose.Reason)
		require.Equal(t, now.Add(10*time.Hour), tight.Start())
		require.Equal(t, now.Add(34*time.Hour), loose.Start(), loose.Reason) // next day's dip
		checkCapacity(t, policy.Input{Now: now, Jobs: jobs, Regions: regs}, res)
	})
	t.Run("when greedy would strand a job, fall back to as soon as possible", func(t *testing.T) {
		t.Parallel()
		regs := []policy.Region{{Name: "a", Capacity: 1, Series: hourly("a", t0, func(i int) float64 {
			if i == 1 || i == 2 {
				return 50
			}
			return 300
		}, 96)}}
		// Both have 2h of slack. Greedy gives the dip (1–3h) to the first,
		// leaving no 3h run in 0–5h for the second.
		jobs := []policy.Job{
			{ID: "two", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(4 * time.Hour)},
			{ID: "three", GPUs: 1, Duration: 3 * time.Hour, Deadline: now.Add(5 * time.Hour)},
		}
		in := policy.Input{Now: now, Jobs: jobs, Regions: regs}
		res := policy.Plan(in)
		checkCapacity(t, in, res)
		for _, a := range res.Assignments {
			require.False(t, a.Urgent, "%s: %s", a.JobID, a.Reason)
		}
		require.Equal(t, now, res.Assignments[0].Start())
		require.Equal(t, now.Add(2*time.Hour), res.Assignments[1].Start())
	})
	t.Run("busy GPUs count against capacity", func(t *testing.T) {
		t.Parallel()
		regs := []policy.Region{{Name: "a", Capacity: 2, Series: dip, Busy: []policy.Usage{{Start: now.Add(9 * time.Hour), End: now.Add(13 * time.Hour), GPUs: 2}}}}
		jobs := []policy.Job{{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(20 * time.Hour)}}
		a := policy.Plan(policy.Input{Now: now, Jobs: jobs, Regions: regs}).Assignments[0]
		require.False(t, a.Urgent)
		require.False(t, a.Start().Before(now.Add(13*time.Hour)) && a.End().After(now.Add(9*time.Hour)), "overlaps busy: %v", a.Segments)
	})
	t.Run("no room before the deadline: urgent, says why", func(t *testing.T) {
		t.Parallel()
		regs := []policy.Region{{Name: "a", Capacity: 1, Series: dip, Busy: []policy.Usage{{Start: now, End: now.Add(24 * time.Hour), GPUs: 1}}}}
		jobs := []policy.Job{{ID: "j", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(20 * time.Hour)}}
		a := policy.Plan(policy.Input{Now: now, Jobs: jobs, Regions: regs}).Assignments[0]
		require.True(t, a.Urgent)
		require.Equal(t, now, a.Start())
		require.Contains(t, a.Reason, "no window before the deadline has free capacity")
	})
	t.Run("a sweep spreads over free windows and regions", func(t *testing.T) {
		t.Parallel()
		regs := []policy.Region{{Name: "a", Capacity: 2, Series: dip}, {Name: "b", Capacity: 2, Series: dip}}
		var jobs []policy.Job
		for i := range 8 {
			jobs = append(jobs, policy.Job{ID: string(rune('a' + i)), Group: "sweep", GPUs: 1, Duration: time.Hour, Deadline: now.Add(40 * time.Hour)})
		}
		in := policy.Input{Now: now, Jobs: jobs, Regions: regs}
		res := policy.Plan(in)
		checkCapacity(t, in, res)
		// The two dips × 2 hours × 2 regions × 2 GPUs hold 16 trial-hours:
		// all 8 trials run in a dip.
		for _, a := range res.Assignments {
			require.False(t, a.Urgent)
			require.InDelta(t, 0.3*50, a.ExpectedGCO2, 1e-9, "%s: %s", a.JobID, a.Reason)
		}
	})
}

// checkCapacity asserts that no region-slot holds more GPUs than its pool
// minus busy, counting every non-urgent assignment over each slot it
// touches.
func checkCapacity(t require.TestingT, in policy.Input, res policy.Result) {
	slot := in.Config.WithDefaults().Slot
	for _, r := range in.Regions {
		for _, cl := range sizeClasses(r) {
			use := map[int64]int{}
			add := func(s, e time.Time, g int) {
				if g < cl.minGPUs {
					return
				}
				for k := s.Truncate(slot); k.Before(e); k = k.Add(slot) {
					use[k.Unix()] += g
				}
			}
			for _, u := range r.Busy {
				if u.End.After(in.Now) { // a usage that ended by now holds nothing
					add(u.Start, u.End, u.GPUs)
				}
			}
			busyOnly := map[int64]int{}
			for k, v := range use {
				busyOnly[k] = v
			}
			for i, a := range res.Assignments {
				if a.Urgent || a.Region != r.Name {
					continue
				}
				for _, w := range a.Segments {
					add(w.Start, w.End, max(in.Jobs[i].GPUs, 1))
				}
			}
			for k, v := range use {
				if v > cl.gpus {
					// Busy alone may already exceed it; planned work must not add.
					require.LessOrEqual(t, v, busyOnly[k], "region %s slot %s: %d GPUs of jobs of %d or more > capacity %d", r.Name, time.Unix(k, 0).UTC(), v, cl.minGPUs, cl.gpus)
				}
			}
		}
	}
}

// sizeClass is one capacity limit of a region: jobs of at least minGPUs
// GPUs together hold at most gpus.
type sizeClass struct{ minGPUs, gpus int }

// sizeClasses returns every capacity limit of r, written out from the
// definition: with Workers, jobs of more than s GPUs (s a machine size, or
// 0) run only on machines larger than s; else Capacity for all jobs; none
// for an unbounded region.
func sizeClasses(r policy.Region) []sizeClass {
	if len(r.Workers) == 0 {
		if r.Capacity <= 0 {
			return nil
		}
		return []sizeClass{{1, r.Capacity}}
	}
	var out []sizeClass
	for _, s := range append([]int{0}, r.Workers...) {
		c := sizeClass{minGPUs: s + 1}
		for _, w := range r.Workers {
			if w > s {
				c.gpus += w
			}
		}
		out = append(out, c)
	}
	return out
}

func TestPlanInterruptible(t *testing.T) {
	t.Parallel()
	now := t0
	// Two separate 2-hour dips a day apart.
	dips := hourly("a", t0, func(i int) float64 {
		if i == 3 || i == 4 || i == 27 || i == 28 {
			return 20
		}
		return 400
	}, 96)
	regs := []policy.Region{{Name: "a", Series: dips}}
	cfg := policy.Config{MinSegment: time.Hour, SafetyMargin: time.Hour}
	job := policy.Job{ID: "j", GPUs: 1, Duration: 4 * time.Hour, Deadline: now.Add(40 * time.Hour), Interruptible: true}
	a := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs, Config: cfg}).Assignments[0]
	require.Equal(t, []policy.Window{{now.Add(3 * time.Hour), now.Add(5 * time.Hour)}, {now.Add(27 * time.Hour), now.Add(29 * time.Hour)}}, a.Segments)
	require.InDelta(t, 1.2*20, a.ExpectedGCO2, 1e-9)
	require.True(t, strings.HasPrefix(a.Reason, "run in 2 segments over the next 29h in a to save 93%"), a.Reason)

	// Not interruptible: one contiguous run.
	job.Interruptible = false
	a = policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs, Config: cfg}).Assignments[0]
	require.Len(t, a.Segments, 1)

	// A minimum segment longer than each dip: no 1h crumbs.
	job.Interruptible = true
	cfg.MinSegment = 3 * time.Hour
	a = policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs, Config: cfg}).Assignments[0]
	for _, w := range a.Segments {
		require.GreaterOrEqual(t, w.End.Sub(w.Start), 3*time.Hour)
	}
}

func TestPlanHysteresis(t *testing.T) {
	t.Parallel()
	now := t0
	// Hour 5 is the cleanest (100); hour 8 is 0.05% dirtier (under the
	// default hysteresis), hour 2 is 50% dirtier.
	s := hourly("a", t0, func(i int) float64 {
		switch i {
		case 5:
			return 100
		case 8:
			return 100.05
		case 2:
			return 150
		}
		return 400
	}, 96)
	regs := []policy.Region{{Name: "a", Series: s}}
	job := func(curHour int) policy.Job {
		st := now.Add(time.Duration(curHour) * time.Hour)
		return policy.Job{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(20 * time.Hour),
			Current: &policy.Assignment{JobID: "j", Region: "a", Segments: []policy.Window{{st, st.Add(time.Hour)}}}}
	}
	tests := []struct {
		name     string
		now      time.Time
		cur      int
		want     int
		kept     bool
		capacity int
	}{
		{"small gain: keep", now, 8, 8, true, 0},
		{"big gain: move", now, 2, 5, false, 0},
		{"current in the past: move", now.Add(3 * time.Hour), 2, 5, false, 0},
		{"small gain with capacity: keep", now, 8, 8, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := []policy.Region{regs[0]}
			rs[0].Capacity = tc.capacity
			a := policy.Plan(policy.Input{Now: tc.now, Jobs: []policy.Job{job(tc.cur)}, Regions: rs}).Assignments[0]
			require.Equal(t, now.Add(time.Duration(tc.want)*time.Hour), a.Start(), a.Reason)
			require.Equal(t, tc.kept, a.Kept)
			if tc.kept {
				require.Contains(t, a.Reason, "keep the current plan")
				require.Contains(t, a.Reason, "a move would gain under 0.1%")
			}
		})
	}
}

func TestPlanExplain(t *testing.T) {
	t.Parallel()
	now := t0
	regs := []policy.Region{
		{Name: "us-west", Series: flat("us-west", t0, 96, 131)},
		{Name: "eu-north", Series: hourly("eu-north", t0, func(i int) float64 {
			if i >= 14 && i < 16 {
				return 123
			}
			return 200
		}, 96)},
		{Name: "dear", Price: policy.PriceSchedule{USDPerGPUHour: 50}, Series: flat("dear", t0, 96, 10)},
	}
	job := policy.Job{ID: "j", GPUs: 1, PowerW: 1000, Duration: time.Hour, Deadline: now.Add(24 * time.Hour), Regions: []string{"us-west", "eu-north", "dear"}, MaxPriceUSDPerGPUHour: 10}
	a := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{job}, Regions: regs}).Assignments[0]
	// Waiting in eu-north saves 77 g, but eu-north now is 69 g dirtier than
	// us-west now: the reason says both.
	require.Equal(t, "defer 14h to eu-north to save 6.1% (123 g vs 131 g now in us-west): waiting saves 77 g, moving -69 g", a.Reason)
	require.InDelta(t, 77, a.SavedByWaitingGCO2, 1e-9)
	require.InDelta(t, -69, a.SavedByMovingGCO2, 1e-9)
	require.Equal(t, []policy.Alternative{
		{Region: "eu-north", Start: now.Add(14 * time.Hour), ExpectedGCO2: 123},
		{Region: "us-west", Start: now, ExpectedGCO2: 131, Rejected: "more gCO2e"},
		{Region: "dear", Rejected: "over max price"},
	}, a.Alternatives)
}

func TestReleaseAt(t *testing.T) {
	t.Parallel()
	now := t0
	w := func(h int) []policy.Window {
		return []policy.Window{{now.Add(time.Duration(h) * time.Hour), now.Add(time.Duration(h+1) * time.Hour)}}
	}
	tests := []struct {
		name string
		a    policy.Assignment
		want time.Time
	}{
		{"urgent", policy.Assignment{Urgent: true, Segments: w(3)}, now},
		{"future start", policy.Assignment{Segments: w(3)}, now.Add(3 * time.Hour)},
		{"start passed", policy.Assignment{Segments: w(-1)}, now},
		{"no segments", policy.Assignment{}, now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, policy.ReleaseAt(tc.a, now))
		})
	}
}

// TestPlanHomeBaseline checks that the baseline is the job's home region
// however its regions are ordered, and that the saving splits into what
// waiting and what moving saved, adding up.
func TestPlanHomeBaseline(t *testing.T) {
	t.Parallel()
	now := t0
	dip := hourly("ca-central", t0, func(i int) float64 {
		if i == 5 {
			return 50
		}
		return 100
	}, 96)
	regs := []policy.Region{{Name: "us-west", Series: flat("us-west", t0, 96, 300)}, {Name: "ca-central", Series: dip}}
	job := policy.Job{ID: "j", GPUs: 1, PowerW: 1000, Duration: time.Hour, Deadline: now.Add(24 * time.Hour)}
	for _, tc := range []struct {
		name    string
		regions []string
		home    string
	}{
		{"home first", []string{"us-west", "ca-central"}, ""},
		{"home named, listed second", []string{"ca-central", "us-west"}, "us-west"},
		{"every region, home named", nil, "us-west"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := job
			j.Regions, j.Home = tc.regions, tc.home
			a := policy.Plan(policy.Input{Now: now, Jobs: []policy.Job{j}, Regions: regs}).Assignments[0]
			require.Equal(t, "ca-central", a.Region)
			require.Equal(t, now.Add(5*time.Hour), a.Start())
			require.Equal(t, "us-west", a.Baseline.Region)
			require.InDelta(t, 300, a.Baseline.ExpectedGCO2, 1e-9)
			require.InDelta(t, 50, a.ExpectedGCO2, 1e-9)
			require.InDelta(t, 50, a.SavedByWaitingGCO2, 1e-9, "ca-central at once (100 g) against its dip (50 g)")
			require.InDelta(t, 200, a.SavedByMovingGCO2, 1e-9, "us-west at once (300 g) against ca-central at once (100 g)")
			require.Equal(t, "defer 5h to ca-central to save 83% (50 g vs 300 g now in us-west): waiting saves 50 g, moving 200 g", a.Reason)
		})
	}
}
