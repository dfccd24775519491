package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/policy"
)

// TestReasonOfTinyJobs: a job whose masses round to 0 g says them to the
// hundredth of a gram, or not at all, never "(0 g vs 0 g now)".
func TestReasonOfTinyJobs(t *testing.T) {
	t.Parallel()
	dip := hourly("r", t0, func(i int) float64 {
		if i == 14 {
			return 123
		}
		return 131
	}, 48)
	for _, tc := range []struct {
		name   string
		powerW float64
		carbon float64 // carbon price, USD/t
		want   string
	}{
		{"under half a gram", 50, 0, "defer 14h in r to save 6.1% (0.20 g vs 0.22 g now)"},
		{"under a hundredth of a gram", 1, 0, "defer 14h in r to save 6.1%"},
		{"priced carbon, under a hundredth", 1, 1e6, "defer 14h in r to cut cost and carbon by 0.3% ($0.10 vs $0.10 now)"},
		{"grams as usual", 1000, 0, "defer 14h in r to save 6.1% (4 g vs 4 g now)"},
	} {
		job := policy.Job{ID: "j", GPUs: 1, PowerW: tc.powerW, Duration: 2 * time.Minute, Deadline: t0.Add(24 * time.Hour)}
		a := policy.Plan(policy.Input{Now: t0, Jobs: []policy.Job{job}, Regions: []policy.Region{{Name: "r", Series: dip, Price: policy.PriceSchedule{USDPerGPUHour: 3}}},
			Config: policy.Config{CarbonPriceUSDPerTonne: tc.carbon}}).Assignments[0]
		require.Equal(t, tc.want, a.Reason, tc.name)
		require.NotContains(t, a.Reason, "0 g vs 0 g", tc.name)
	}
}
