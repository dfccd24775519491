package policy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// TestPlanSweepStartsNowWhenFree: trials of a sweep that fit in the free
// GPUs right now start now, mid-slot, rather than at the next slot
// boundary or behind another trial, when waiting gains nothing (issue #20:
// a 4-trial sweep waited for a 1-minute slot with nothing else running).
func TestPlanSweepStartsNowWhenFree(t *testing.T) {
	t.Parallel()
	slot := time.Minute
	now := t0.Add(12*time.Hour + 37*time.Second) // mid-slot
	flatAll := func(name string) forecast.Series { return flat(name, t0, 48, 200) }
	tests := []struct {
		name    string
		regions []policy.Region
		trials  int
		gpus    int
	}{
		{"one region, room for all", []policy.Region{{Name: "a", Capacity: 4, Series: flatAll("a")}}, 4, 1},
		{"two regions, equal carbon and price", []policy.Region{
			{Name: "a", Capacity: 2, Series: flatAll("a")},
			{Name: "b", Capacity: 2, Series: flatAll("b")},
		}, 4, 1},
		{"three regions, one without a signal", []policy.Region{
			{Name: "a", Capacity: 1, Series: flatAll("a")},
			{Name: "b", Capacity: 2, Series: forecast.Series{Region: "b"}},
			{Name: "c", Capacity: 1, Series: flatAll("c")},
		}, 4, 1},
		{"machines of several sizes", []policy.Region{
			{Name: "a", Workers: []int{2}, Series: flatAll("a")},
			{Name: "b", Workers: []int{2, 4}, Series: flatAll("b")},
		}, 4, 2},
		{"a run that ended earlier in this slot frees its GPUs", []policy.Region{
			{Name: "a", Capacity: 2, Series: flatAll("a"), Busy: []policy.Usage{{Start: now.Add(-time.Hour), End: now.Add(-20 * time.Second), GPUs: 2}}},
			{Name: "b", Capacity: 2, Series: flatAll("b")},
		}, 4, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var jobs []policy.Job
			for i := range tc.trials {
				jobs = append(jobs, policy.Job{ID: fmt.Sprintf("trial-%d", i), Group: "sweep", GPUs: tc.gpus,
					Duration: 3 * time.Minute, Earliest: now.Add(-5 * time.Second), Deadline: now.Add(2 * time.Hour)})
			}
			in := policy.Input{Now: now, Jobs: jobs, Regions: tc.regions, Config: policy.Config{Slot: slot}}
			res := policy.Plan(in)
			checkCapacity(t, in, res)
			for _, a := range res.Assignments {
				require.False(t, a.Urgent, "%s: %s", a.JobID, a.Reason)
				require.Equal(t, now, a.Start(), "%s waits in %s: %s", a.JobID, a.Region, a.Reason)
				require.Equal(t, now, policy.ReleaseAt(a, now))
			}
		})
	}
}
