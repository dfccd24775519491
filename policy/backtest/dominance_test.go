package backtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// TestCheckDominance: an interruptible job's assignment counts as a
// violation only when it expects more than the same job planned in one
// piece, beyond the hysteresis for a kept plan, and only in rounds without
// capacity.
func TestCheckDominance(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	ser := forecast.Series{Region: "a", Signal: forecast.SignalAverage}
	for i := range 48 {
		st := t0.Add(time.Duration(i) * time.Hour)
		ser.Points = append(ser.Points, forecast.Point{Start: st, End: st.Add(time.Hour), GCO2PerKWh: float64(100 + 50*(i%5)), Kind: forecast.KindForecast})
	}
	in := policy.Input{Now: t0, Regions: []policy.Region{{Name: "a", Series: ser}}, Jobs: []policy.Job{
		{ID: "i", GPUs: 1, Duration: 3 * time.Hour, Deadline: t0.Add(24 * time.Hour), Interruptible: true},
		{ID: "c", GPUs: 1, Duration: 3 * time.Hour, Deadline: t0.Add(24 * time.Hour)},
	}}
	good := policy.Plan(in)
	one := in
	one.Jobs = []policy.Job{in.Jobs[0]}
	one.Jobs[0].Interruptible = false
	best := policy.Plan(one).Assignments[0].ExpectedGCO2
	tests := []struct {
		name     string
		gco2     float64
		kept     bool
		capacity int
		want     int
	}{
		{"the planner's own plan", good.Assignments[0].ExpectedGCO2, false, 0, 0},
		{"worse than one piece", best * 1.01, false, 0, 1},
		{"kept, within the hysteresis", best * (1 + policy.DefaultHysteresis/2), true, 0, 0},
		{"kept, beyond it", best * (1 + 2*policy.DefaultHysteresis), true, 0, 1},
		{"capacity: not checked", best * 2, false, 4, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := in
			in.Regions = []policy.Region{{Name: "a", Series: ser, Capacity: tc.capacity}}
			res := good
			res.Assignments = append([]policy.Assignment(nil), good.Assignments...)
			res.Assignments[0].ExpectedGCO2, res.Assignments[0].Kept = tc.gco2, tc.kept
			res.Assignments[1].ExpectedGCO2 = best * 3 // not interruptible: never counted
			var st greenStats
			(&sim{}).checkDominance(in, res, &st)
			require.Len(t, st.violators, tc.want)
		})
	}
}
