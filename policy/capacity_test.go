package policy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// genSinglePool draws a round in which earliest deadline first, as soon as
// possible, is optimal (see Plan): one pool, no busy GPUs, now on a slot
// boundary, every job free to start now, needing more than half the pool
// for a whole number of slots, with staggered deadlines that are often too
// tight for all.
func genSinglePool(t *rapid.T, series []forecast.Series) policy.Input {
	slot := 15 * time.Minute
	now := t0.Add(time.Duration(rapid.IntRange(0, 4*24).Draw(t, "nowSlot")) * slot)
	c := rapid.IntRange(1, 4).Draw(t, "capacity")
	reg := policy.Region{
		Name: "pool", Capacity: c, PUE: 1.1,
		Series: series[rapid.IntRange(0, len(series)-1).Draw(t, "zone")],
		Price:  policy.PriceSchedule{USDPerGPUHour: 2},
	}
	n := rapid.IntRange(2, 6).Draw(t, "jobs")
	jobs := make([]policy.Job, n)
	for i := range jobs {
		slots := rapid.IntRange(1, 8).Draw(t, "slots")
		jobs[i] = policy.Job{
			ID:       fmt.Sprintf("j%d", i),
			GPUs:     rapid.IntRange(c/2+1, c).Draw(t, "gpus"),
			Duration: time.Duration(slots) * slot,
			Earliest: now.Add(-time.Duration(rapid.IntRange(0, 120).Draw(t, "agoMin")) * time.Minute),
			Deadline: now.Add(time.Duration(slots+rapid.IntRange(0, 4*n).Draw(t, "slackSlots")) * slot),
		}
	}
	cfg := policy.Config{Passes: rapid.IntRange(0, 3).Draw(t, "passes")}
	return policy.Input{Now: now, Jobs: jobs, Regions: []policy.Region{reg}, Config: cfg}
}

// feasibleOnePool reports, by trying every order, whether the jobs of a
// genSinglePool round can all run one after another from now and meet
// their deadlines.
func feasibleOnePool(in policy.Input) bool {
	n := len(in.Jobs)
	used := make([]bool, n)
	var try func(at time.Time, placed int) bool
	try = func(at time.Time, placed int) bool {
		if placed == n {
			return true
		}
		for i, j := range in.Jobs {
			if used[i] || at.Add(j.Duration).After(j.Deadline) {
				continue
			}
			used[i] = true
			ok := try(at.Add(j.Duration), placed+1)
			used[i] = false
			if ok {
				return true
			}
		}
		return false
	}
	return try(in.Now, 0)
}

// urgent counts the jobs left without a window: urgent, or held by their
// price cap.
func urgent(res policy.Result) int {
	n := 0
	for _, a := range res.Assignments {
		if a.Urgent || a.Held {
			n++
		}
	}
	return n
}

// TestPlanCapacityFeasibleOnePool checks, against a brute-force
// feasibility check, that where the capacity algorithm promises it no job
// is urgent when every deadline can be met: through Plan and through the
// fallback alone, with and without its improvement passes.
func TestPlanCapacityFeasibleOnePool(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		in := genSinglePool(t, series)
		feasible := feasibleOnePool(in)
		for _, p := range []struct {
			name string
			plan func(policy.Input) policy.Result
		}{
			{"plan", policy.Plan},
			{"no repair", policy.PlanNoRepair},
			{"reserve only", func(in policy.Input) policy.Result { return policy.PlanFallback(in, false) }},
			{"reserve and improve", func(in policy.Input) policy.Result { return policy.PlanFallback(in, true) }},
		} {
			res := p.plan(in)
			checkInvariants(t, in, res)
			if feasible {
				for _, a := range res.Assignments {
					require.False(t, a.Urgent, "%s: %s urgent (%s) though every deadline can be met", p.name, a.JobID, a.Reason)
				}
			}
			require.Equal(t, res, p.plan(in), "%s: not deterministic", p.name)
		}
	})
}

// genTight draws a crowded round: every region bounded and small, many jobs
// with staggered deadlines, some busy GPUs, sweeps, interruptible and
// price-capped jobs, so greedy strands jobs and the repair and fallback run.
func genTight(t *rapid.T, series []forecast.Series) policy.Input {
	now := t0.Add(time.Duration(rapid.IntRange(0, 24*60).Draw(t, "nowMin")) * time.Minute)
	var regs []policy.Region
	for i := range rapid.IntRange(1, 3).Draw(t, "regions") {
		r := policy.Region{
			Name:     fmt.Sprintf("r%d", i),
			Capacity: rapid.IntRange(1, 4).Draw(t, "capacity"),
			Series:   series[rapid.IntRange(0, len(series)-1).Draw(t, "zone")],
			Price:    policy.PriceSchedule{USDPerGPUHour: float64(rapid.IntRange(1, 3).Draw(t, "price"))},
		}
		if rapid.Bool().Draw(t, "busy") {
			st := now.Add(time.Duration(rapid.IntRange(-60, 6*60).Draw(t, "busyStart")) * time.Minute)
			r.Busy = []policy.Usage{{Start: st, End: st.Add(time.Duration(rapid.IntRange(15, 240).Draw(t, "busyLen")) * time.Minute), GPUs: 1}}
		}
		regs = append(regs, r)
	}
	var jobs []policy.Job
	for i := range rapid.IntRange(2, 12).Draw(t, "jobs") {
		d := time.Duration(rapid.IntRange(1, 12).Draw(t, "slots")) * 15 * time.Minute
		if rapid.Bool().Draw(t, "oddDur") {
			d -= time.Duration(rapid.IntRange(1, 14).Draw(t, "trimMin")) * time.Minute
		}
		earliest := now.Add(time.Duration(rapid.IntRange(-60, 3*60).Draw(t, "earliestMin")) * time.Minute)
		j := policy.Job{
			ID:            fmt.Sprintf("j%d", i),
			GPUs:          rapid.IntRange(1, 3).Draw(t, "gpus"),
			Duration:      d,
			Earliest:      earliest,
			Deadline:      earliest.Add(d + time.Duration(rapid.IntRange(0, 8*60).Draw(t, "slackMin"))*time.Minute),
			Interruptible: rapid.IntRange(0, 3).Draw(t, "interruptible") == 0,
		}
		if rapid.IntRange(0, 3).Draw(t, "grouped") == 0 {
			j.Group = "sweep"
		}
		if rapid.IntRange(0, 5).Draw(t, "capped") == 0 {
			j.MaxPriceUSDPerGPUHour = 2
		}
		if len(regs) > 1 && rapid.Bool().Draw(t, "restricted") {
			j.Regions = []string{regs[rapid.IntRange(0, len(regs)-1).Draw(t, "only")].Name}
		}
		jobs = append(jobs, j)
	}
	return policy.Input{Now: now, Jobs: jobs, Regions: regs, Config: policy.Config{MinSegment: 30 * time.Minute}}
}

// TestPlanCapacityFallbackProperties forces every path of the capacity
// algorithm on crowded rounds: each plan keeps the invariants (capacity
// never exceeded, deadlines met by every job not urgent) and is
// deterministic; Plan leaves no more jobs urgent than the fallback's
// reservation or than planning without the repair; the improvement passes
// never make a job urgent.
func TestPlanCapacityFallbackProperties(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		in := genTight(t, series)
		plan, noRepair := policy.Plan(in), policy.PlanNoRepair(in)
		reserved, improved := policy.PlanFallback(in, false), policy.PlanFallback(in, true)
		for _, res := range []policy.Result{plan, noRepair, reserved, improved} {
			checkInvariants(t, in, res)
		}
		require.Equal(t, plan, policy.Plan(in), "not deterministic")
		require.Equal(t, improved, policy.PlanFallback(in, true), "fallback not deterministic")
		require.LessOrEqual(t, urgent(plan), urgent(reserved))
		require.LessOrEqual(t, urgent(plan), urgent(noRepair))
		require.Equal(t, urgent(reserved), urgent(improved))

		// Re-planned with each job's plan as Current, still valid.
		later := in
		later.Jobs = append([]policy.Job(nil), in.Jobs...)
		for i := range later.Jobs {
			a := plan.Assignments[i]
			later.Jobs[i].Current = &a
		}
		checkInvariants(t, later, policy.Plan(later))
		checkInvariants(t, later, policy.PlanFallback(later, true))
	})
}

func TestPlanCapacityFallbackReservation(t *testing.T) {
	t.Parallel()
	now := t0
	flatSeries := flat("a", t0, 96, 100)
	tests := []struct {
		name   string
		regs   []policy.Region
		jobs   []policy.Job
		urgent []bool
		starts []time.Duration // from now, for jobs not urgent
	}{
		{
			// Pool a is busy until 3h; the only window left there ends
			// past the deadline, so the job is urgent, not reserved late
			// (a job in b with a later deadline makes the grid longer).
			name: "earliest free window past the deadline: urgent",
			regs: []policy.Region{
				{Name: "a", Capacity: 1, Series: flatSeries, Busy: []policy.Usage{{Start: now, End: now.Add(3 * time.Hour), GPUs: 1}}},
				{Name: "b", Capacity: 1, Series: flatSeries},
			},
			jobs: []policy.Job{
				{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(3*time.Hour + 30*time.Minute), Regions: []string{"a"}},
				{ID: "later", GPUs: 1, Duration: time.Hour, Deadline: now.Add(20 * time.Hour), Regions: []string{"b"}},
			},
			urgent: []bool{true, false},
			starts: []time.Duration{0, 0},
		},
		{
			name:   "earliest free window ends at the deadline: reserved",
			regs:   []policy.Region{{Name: "a", Capacity: 1, Series: flatSeries, Busy: []policy.Usage{{Start: now, End: now.Add(3 * time.Hour), GPUs: 1}}}},
			jobs:   []policy.Job{{ID: "j", GPUs: 1, Duration: time.Hour, Deadline: now.Add(4 * time.Hour)}},
			urgent: []bool{false},
			starts: []time.Duration{3 * time.Hour},
		},
		{
			// Least slack first would start "long" at once and make
			// "short" late; earliest deadline first fits both.
			name: "earliest deadline first",
			regs: []policy.Region{{Name: "a", Capacity: 1, Series: flatSeries}},
			jobs: []policy.Job{
				{ID: "long", GPUs: 1, Duration: 6 * time.Hour, Deadline: now.Add(10 * time.Hour)},
				{ID: "short", GPUs: 1, Duration: time.Hour, Deadline: now.Add(6 * time.Hour)},
			},
			urgent: []bool{false, false},
			starts: []time.Duration{time.Hour, 0},
		},
		{
			name: "the second job's window is taken: urgent",
			regs: []policy.Region{{Name: "a", Capacity: 1, Series: flatSeries}},
			jobs: []policy.Job{
				{ID: "first", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(2 * time.Hour)},
				{ID: "second", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(3 * time.Hour)},
			},
			urgent: []bool{false, true},
			starts: []time.Duration{0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := policy.Input{Now: now, Jobs: tc.jobs, Regions: tc.regs}
			for _, res := range []policy.Result{policy.PlanFallback(in, false), policy.PlanFallback(in, true), policy.Plan(in)} {
				checkCapacity(t, in, res)
				for i, a := range res.Assignments {
					require.Equal(t, tc.urgent[i], a.Urgent, "%s: %s", a.JobID, a.Reason)
					if a.Urgent {
						require.Equal(t, now, a.Start())
						continue
					}
					require.False(t, a.End().After(tc.jobs[i].Deadline), "%s ends %s after its deadline", a.JobID, a.End())
					require.Equal(t, now.Add(tc.starts[i]), a.Start(), "%s: %s", a.JobID, a.Reason)
				}
			}
		})
	}
}

func TestPlanCapacityRepair(t *testing.T) {
	t.Parallel()
	now := t0
	regs := []policy.Region{{Name: "a", Capacity: 1, Series: hourly("a", t0, func(i int) float64 {
		if i == 1 || i == 2 {
			return 50
		}
		return 300
	}, 96)}}
	// Both have 2h of slack; greedy gives the dip (1–3h) to "two", leaving
	// no 3h run in 0–5h for "three". Repair moves "two" to 0–2h.
	jobs := []policy.Job{
		{ID: "two", GPUs: 1, Duration: 2 * time.Hour, Deadline: now.Add(4 * time.Hour)},
		{ID: "three", GPUs: 1, Duration: 3 * time.Hour, Deadline: now.Add(5 * time.Hour)},
	}
	in := policy.Input{Now: now, Jobs: jobs, Regions: regs}
	for _, res := range []policy.Result{policy.Plan(in), policy.PlanNoRepair(in)} {
		checkCapacity(t, in, res)
		require.Equal(t, 0, urgent(res))
		require.Equal(t, now, res.Assignments[0].Start())
		require.Equal(t, now.Add(2*time.Hour), res.Assignments[1].Start())
	}
}

func TestPlanCapacityLongRun(t *testing.T) {
	t.Parallel()
	// One-second slots: a 24 h run is 86 400 slots, past any fixed tail of
	// the grid; busy GPUs 39–40 h out must still keep it off.
	now := t0
	series := hourly("a", t0, func(i int) float64 {
		if i >= 16 && i < 48 {
			return 100
		}
		return 500
	}, 96)
	busy := policy.Usage{Start: now.Add(39 * time.Hour), End: now.Add(40 * time.Hour), GPUs: 1}
	tests := []struct {
		name     string
		capacity int
		overlaps bool
	}{
		{"bounded: the run avoids the busy hour", 1, false},
		// Capacity 0 is unbounded: busy GPUs there are ignored.
		{"unbounded: busy GPUs ignored", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := policy.Input{
				Now:     now,
				Jobs:    []policy.Job{{ID: "long", GPUs: 1, Duration: 24 * time.Hour, Deadline: now.Add(66 * time.Hour)}},
				Regions: []policy.Region{{Name: "a", Capacity: tc.capacity, Series: series, Busy: []policy.Usage{busy}}},
				Config:  policy.Config{Slot: time.Second, SafetyMargin: time.Minute},
			}
			a := policy.Plan(in).Assignments[0]
			require.False(t, a.Urgent, a.Reason)
			overlaps := a.Start().Before(busy.End) && a.End().After(busy.Start)
			require.Equal(t, tc.overlaps, overlaps, "%s–%s: %s", a.Start(), a.End(), a.Reason)
			checkCapacity(t, in, policy.Plan(in))
		})
	}
}

// TestPlanPruneExact checks that skipping regions whose bound cannot beat
// the best option so far never changes a plan.
func TestPlanPruneExact(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		var in policy.Input
		if rapid.Bool().Draw(t, "tight") {
			in = genTight(t, series)
		} else {
			in = genInput(t, series, 8, rapid.Bool().Draw(t, "carbonMode"))
		}
		require.Equal(t, policy.PlanNoPrune(in), policy.Plan(in))
	})
}

// TestPlanWorkerSizes checks that capacity is per machine: a job of N GPUs
// runs on one worker of at least N, so smaller workers are no room for it.
func TestPlanWorkerSizes(t *testing.T) {
	t.Parallel()
	now := t0
	// Cleanest now, dearer every hour after: every job wants to start now.
	rising := func(name string) forecast.Series {
		return hourly(name, t0, func(i int) float64 { return 100 + 10*float64(i) }, 96)
	}
	cleaner := func(name string) forecast.Series {
		return hourly(name, t0, func(i int) float64 { return 10 + float64(i) }, 96)
	}
	job := func(id string, gpus int, regions ...string) policy.Job {
		return policy.Job{ID: id, GPUs: gpus, Duration: time.Hour, Deadline: now.Add(24 * time.Hour), Regions: regions}
	}
	busy4 := []policy.Usage{{Start: now, End: now.Add(2 * time.Hour), GPUs: 4}}
	tests := []struct {
		name    string
		regions []policy.Region
		jobs    []policy.Job
		// want is each job's region and start offset; "" = no region.
		want   []string
		starts []time.Duration
		reason string // in the first job's reason
	}{
		{
			name: "a 3-GPU job skips the cleaner region of 2-GPU workers",
			regions: []policy.Region{
				{Name: "small", Workers: []int{2, 2}, Series: cleaner("small")},
				{Name: "big", Workers: []int{4}, Series: rising("big")},
			},
			jobs:   []policy.Job{job("j3", 3), job("j2", 2)},
			want:   []string{"big", "small"},
			starts: []time.Duration{0, 0},
		},
		{
			name:    "only 2-GPU workers: a 3-GPU job gets no region",
			regions: []policy.Region{{Name: "small", Workers: []int{2, 2}, Series: cleaner("small")}},
			jobs:    []policy.Job{job("j3", 3)},
			want:    []string{""},
			reason:  "needs 3 GPUs, more than the largest worker of any allowed region",
		},
		{
			name:    "a configured largest worker limits an unbounded region",
			regions: []policy.Region{{Name: "small", MaxJobGPUs: 2, Series: cleaner("small")}, {Name: "big", Series: rising("big")}},
			jobs:    []policy.Job{job("j3", 3), job("j1", 1)},
			want:    []string{"big", "small"},
			starts:  []time.Duration{0, 0},
		},
		{
			name: "two 2-GPU workers are no room for a 3-GPU job while the 4-GPU one is busy",
			regions: []policy.Region{
				{Name: "mixed", Workers: []int{2, 2, 4}, Busy: busy4, Series: rising("mixed")},
			},
			// 4 GPUs are free now, but not on one machine that can take 3.
			jobs:   []policy.Job{job("j3", 3), job("j2", 2), job("j1", 1)},
			want:   []string{"mixed", "mixed", "mixed"},
			starts: []time.Duration{2 * time.Hour, 0, 0},
		},
		{
			name: "the largest worker is down: its jobs wait for it, small ones run",
			regions: []policy.Region{
				{Name: "mixed", Workers: []int{2}, MaxJobGPUs: 4, Series: rising("mixed")},
				{Name: "other", Workers: []int{4}, Series: rising("other")},
			},
			jobs:   []policy.Job{job("j3", 3, "mixed", "other"), job("j2", 2, "mixed")},
			want:   []string{"other", "mixed"},
			starts: []time.Duration{0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := policy.Input{Now: now, Jobs: tt.jobs, Regions: tt.regions}
			res := policy.Plan(in)
			for i, a := range res.Assignments {
				require.Equal(t, tt.want[i], a.Region, "%s: %s", a.JobID, a.Reason)
				if tt.want[i] == "" {
					require.True(t, a.Urgent)
					continue
				}
				require.False(t, a.Urgent, "%s: %s", a.JobID, a.Reason)
				require.Equal(t, now.Add(tt.starts[i]), a.Start(), "%s: %s", a.JobID, a.Reason)
			}
			require.Contains(t, res.Assignments[0].Reason, tt.reason)
			checkCapacity(t, in, res)
		})
	}
}

// TestPlanWorkerSizesProperty checks, over random pools of 2-GPU workers,
// that a 3-GPU job is never planned there, whatever else is in the round.
func TestPlanWorkerSizesProperty(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t, series, 6, false)
		small := policy.Region{Name: "small", Series: series[0]}
		for range rapid.IntRange(1, 4).Draw(t, "smallWorkers") {
			small.Workers = append(small.Workers, 2)
		}
		in.Regions = append(in.Regions, small)
		for i := range in.Jobs {
			if rapid.Bool().Draw(t, "threeGPUs") {
				in.Jobs[i].GPUs = 3
			}
			if len(in.Jobs[i].Regions) > 0 && rapid.Bool().Draw(t, "allowSmall") {
				in.Jobs[i].Regions = append(in.Jobs[i].Regions, "small")
			}
		}
		res := policy.Plan(in)
		checkInvariants(t, in, res)
		for i, a := range res.Assignments {
			if in.Jobs[i].GPUs >= 3 {
				require.NotEqual(t, "small", a.Region, "%s: %s", a.JobID, a.Reason)
			}
		}
	})
}
