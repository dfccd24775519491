package policy_test

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/greenq/greenq/policy"
)

// TestPlanInterruptibleDominance: an interruptible job is never planned
// worse, in expected gCO2e (in the objective under a carbon price), than
// the same job planned in one piece: splitting is an option it may take,
// not a constraint (issue #18 item 4). Alone, with capacity, busy GPUs and
// price caps; among other jobs, without capacity limits (jobs are then
// independent).
func TestPlanInterruptibleDominance(t *testing.T) {
	t.Parallel()
	series := fixtureSeries(t)
	rapid.Check(t, func(t *rapid.T) {
		alone := rapid.Bool().Draw(t, "alone")
		maxJobs := 6
		if alone {
			maxJobs = 1
		}
		in := genInput(t, series, maxJobs, rapid.Bool().Draw(t, "carbonMode"))
		if !alone {
			in.Regions = slices.Clone(in.Regions)
			for i := range in.Regions {
				r := &in.Regions[i]
				if r.MaxJobGPUs == 0 {
					r.MaxJobGPUs = slices.Max(append([]int{0}, r.Workers...))
				}
				r.Capacity, r.Busy, r.Workers = 0, nil, nil
			}
		}
		k := rapid.IntRange(0, len(in.Jobs)-1).Draw(t, "job")
		in.Jobs = slices.Clone(in.Jobs)
		in.Jobs[k].Interruptible = true
		one := in
		one.Jobs = slices.Clone(in.Jobs)
		one.Jobs[k].Interruptible = false
		a, b := policy.Plan(in).Assignments[k], policy.Plan(one).Assignments[k]
		if b.Held || b.Region == "" {
			return
		}
		require.False(t, a.Held, "interruptible held where one piece is not: %s", a.Reason)
		require.NotEmpty(t, a.Region, a.Reason)
		cfg := in.Config.WithDefaults()
		ga, gb := objective(cfg, a.ExpectedGCO2, a.ExpectedCostUSD), objective(cfg, b.ExpectedGCO2, b.ExpectedCostUSD)
		require.LessOrEqual(t, ga, gb+1e-9*math.Abs(gb)+1e-12,
			"interruptible %v in %s (%s) scores %g, one piece %v in %s (%s) %g", a.Segments, a.Region, a.Reason, ga, b.Segments, b.Region, b.Reason, gb)
	})
}
