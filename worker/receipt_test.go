package worker

import (
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/stretchr/testify/require"
)

func TestComputeReceipt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pt := func(from, to time.Duration, v float64, k forecast.PointKind) forecast.Point {
		return forecast.Point{Start: t0.Add(from), End: t0.Add(to), GCO2PerKWh: v, Kind: k}
	}
	series := func(region, src string, sig forecast.Signal, ps ...forecast.Point) forecast.Series {
		return forecast.Series{Region: region, Source: src, Signal: sig, Points: ps}
	}
	clean := series("clean", "file", forecast.SignalAverage,
		pt(0, 30*time.Minute, 100, forecast.KindActual), pt(30*time.Minute, 2*time.Hour, 200, forecast.KindForecast))
	dirty := series("dirty", "file", forecast.SignalAverage, pt(-4*time.Hour, 4*time.Hour, 400, forecast.KindActual))
	dirtyMarginal := series("dirty", "watttime", forecast.SignalMarginal, pt(-4*time.Hour, 4*time.Hour, 900, forecast.KindActual))
	seg := func(region string, from, to time.Duration, gpu float64) SegmentEnergy {
		return SegmentEnergy{Region: region, Start: t0.Add(from), End: t0.Add(to), GPUKWh: gpu, CPUKWh: 0.1, RAMKWh: 0.02}
	}
	plan := &greenq.Plan{Region: "clean", ExpectedGCO2: 100, ExpectedKWh: 1,
		Baseline: greenq.Baseline{Region: "dirty", Start: t0.Add(-3 * time.Hour), ExpectedGCO2: 300}}

	tests := []struct {
		name          string
		in            ReceiptInput
		kwh           float64
		pue           float64
		intensity     float64
		source        string
		signal        string
		baselineI     float64
		baselineGCO2x float64 // baseline gCO2 per kWh of IT energy (PUE included)
		embodied      float64
		sciUnits      float64
	}{
		{
			name: "time-weighted over actual then forecast",
			in: ReceiptInput{Segments: []SegmentEnergy{seg("clean", 0, time.Hour, 0.5)},
				Series: map[string]forecast.Series{"clean": clean, "dirty": dirty},
				PUE:    map[string]float64{"clean": 1.1, "dirty": 1.5}, Plan: plan},
			kwh: 0.62, pue: 1.1, intensity: 150, source: "file:actual+forecast", signal: "average",
			baselineI: 400, baselineGCO2x: 1.5 * 400, sciUnits: 1,
		},
		{
			name: "actual only",
			in: ReceiptInput{Segments: []SegmentEnergy{seg("clean", 0, 30*time.Minute, 0.2)},
				Series: map[string]forecast.Series{"clean": clean, "dirty": dirty}, Plan: plan},
			kwh: 0.32, pue: 1, intensity: 100, source: "file:actual", signal: "average",
			baselineI: 400, baselineGCO2x: 400, sciUnits: 1,
		},
		{
			name: "no series: plan's expected intensity",
			in: ReceiptInput{Segments: []SegmentEnergy{seg("clean", 0, time.Hour, 0.5)},
				PUE: map[string]float64{"clean": 1.25}, Plan: plan},
			kwh: 0.62, pue: 1.25, intensity: 80, source: "plan:forecast",
			baselineI: 300, baselineGCO2x: 300, sciUnits: 1,
		},
		{
			name: "baseline of another signal is not mixed in",
			in: ReceiptInput{Segments: []SegmentEnergy{seg("clean", 0, 30*time.Minute, 0.2)},
				Series: map[string]forecast.Series{"clean": clean, "dirty": dirtyMarginal}, Plan: plan},
			kwh: 0.32, pue: 1, intensity: 100, source: "file:actual", signal: "average",
			baselineI: 300, baselineGCO2x: 300, sciUnits: 1,
		},
		{
			name: "two regions, two PUEs, energy-weighted",
			in: ReceiptInput{
				Segments: []SegmentEnergy{seg("clean", 0, 30*time.Minute, 0.18), seg("dirty", time.Hour, 90*time.Minute, 0.38)},
				Series:   map[string]forecast.Series{"clean": clean, "dirty": dirty},
				PUE:      map[string]float64{"clean": 1, "dirty": 2}},
			// facility kWh: 0.3×1 + 0.5×2 = 1.3; gCO2: 0.3×100 + 1.0×400 = 430
			kwh: 0.8, pue: 1.3 / 0.8, intensity: 430 / 1.3, source: "file:actual", signal: "average",
			sciUnits: 1,
		},
		{
			name: "nothing known",
			in:   ReceiptInput{Segments: []SegmentEnergy{seg("nowhere", 0, time.Hour, 0.5)}},
			kwh:  0.62, pue: 1, intensity: 0, source: "unavailable", sciUnits: 1,
		},
		{
			name: "SCI with embodied emissions and a functional unit",
			in: ReceiptInput{Segments: []SegmentEnergy{seg("clean", 0, 30*time.Minute, 0.2)},
				Series: map[string]forecast.Series{"clean": clean}, GPUs: 2, EmbodiedGCO2PerGPUHour: 10,
				FunctionalUnit: "1000 images", FunctionalUnits: 4},
			kwh: 0.32, pue: 1, intensity: 100, source: "file:actual", signal: "average",
			embodied: 10, sciUnits: 4,
		},
		{
			name: "earlier segment known only by its total",
			in: ReceiptInput{Segments: []SegmentEnergy{
				{Region: "clean", Start: t0, End: t0.Add(30 * time.Minute), OtherKWh: 0.3},
				seg("clean", 30*time.Minute, time.Hour, 0.2)},
				Series: map[string]forecast.Series{"clean": clean}},
			kwh: 0.62, pue: 1, intensity: (0.3*100 + 0.32*200) / 0.62, source: "file:actual,file:forecast", signal: "average",
			sciUnits: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ComputeReceipt(tt.in)
			require.InDelta(t, tt.kwh, r.EnergyKWh, 1e-12)
			require.InDelta(t, tt.pue, r.PUE, 1e-12)
			require.InDelta(t, tt.intensity, r.IntensityGCO2PerKWh, 1e-9)
			require.Equal(t, tt.source, r.IntensitySource)
			require.Equal(t, tt.signal, r.Signal)
			// The receipt's identities hold exactly.
			require.Equal(t, r.EnergyKWh*r.PUE*r.IntensityGCO2PerKWh, r.GCO2)
			require.Equal(t, r.BaselineGCO2-r.GCO2, r.SavedGCO2)
			require.Equal(t, (r.GCO2+r.EmbodiedGCO2)/tt.sciUnits, r.SCI)
			if tt.baselineGCO2x > 0 {
				require.InDelta(t, tt.baselineI, r.BaselineIntensityGCO2PerKWh, 1e-9)
				require.InDelta(t, r.EnergyKWh*tt.baselineGCO2x, r.BaselineGCO2, 1e-9)
				require.Equal(t, "dirty", r.BaselineRegion)
			} else {
				require.Equal(t, r.GCO2, r.BaselineGCO2, "no baseline: nothing saved")
				require.Zero(t, r.SavedGCO2)
			}
			require.InDelta(t, tt.embodied, r.EmbodiedGCO2, 1e-12)
			require.InDelta(t, r.GPUEnergyKWh+r.CPUEnergyKWh+r.RAMEnergyKWh+otherKWh(tt.in), r.EnergyKWh, 1e-12)
			if tt.in.FunctionalUnit == "" {
				require.Equal(t, "job", r.FunctionalUnit)
			}
		})
	}
}

func otherKWh(in ReceiptInput) float64 {
	var s float64
	for _, g := range in.Segments {
		s += g.OtherKWh
	}
	return s
}

func TestDefaultEmbodied(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 10.34, DefaultEmbodiedGCO2PerGPUHour, 0.01)
}

// TestReceiptSavingsSplit is the case: a job allowed in a,b where
// b is cleaner but a is home, run later in b. The two savings add up to
// saved_gco2, and waiting saved what b at submit would have emitted minus
// what the job did.
func TestReceiptSavingsSplit(t *testing.T) {
	t.Parallel()
	submit := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	flat := func(region string, v func(h int) float64) forecast.Series {
		s := forecast.Series{Region: region, Source: "file", Signal: forecast.SignalAverage}
		for h := -2; h < 24; h++ {
			at := submit.Add(time.Duration(h) * time.Hour)
			s.Points = append(s.Points, forecast.Point{Start: at, End: at.Add(time.Hour), GCO2PerKWh: v(h), Kind: forecast.KindActual})
		}
		return s
	}
	a := flat("a", func(int) float64 { return 400 })
	b := flat("b", func(h int) float64 {
		if h == 5 {
			return 60 // the window the planner waited for
		}
		return 100
	})
	start := submit.Add(5 * time.Hour)
	in := ReceiptInput{
		Segments: []SegmentEnergy{{Region: "b", Start: start, End: start.Add(time.Hour), GPUKWh: 0.9, CPUKWh: 0.1}},
		Series:   map[string]forecast.Series{"a": a, "b": b},
		Regions:  map[string]greenq.Region{"a": {Name: "a", PUE: 1.5}, "b": {Name: "b", PUE: 1.2}},
		Home:     "a", SubmittedAt: submit, GPUs: 1,
		// A plan whose baseline is the other region: the job's home wins.
		Plan: &greenq.Plan{Region: "b", Baseline: greenq.Baseline{Region: "b", Start: submit}},
	}
	r := ComputeReceipt(in)
	require.Equal(t, "a", r.BaselineRegion)
	require.InDelta(t, 1*1.2*60, r.GCO2, 1e-9)
	require.InDelta(t, 1*1.5*400, r.BaselineGCO2, 1e-9)
	require.InDelta(t, r.SavedGCO2, r.SavedByWaitingGCO2+r.SavedByMovingGCO2, 1e-9)
	sameRegionAtSubmit := 1 * 1.2 * 100.0
	require.InDelta(t, sameRegionAtSubmit-r.GCO2, r.SavedByWaitingGCO2, 1e-9, "waiting: b at submit against b when it ran")
	require.InDelta(t, r.BaselineGCO2-sameRegionAtSubmit, r.SavedByMovingGCO2, 1e-9, "moving: a against b, both at submit")

	// The order of the regions does not matter; only home does.
	in.Home = "b"
	r = ComputeReceipt(in)
	require.Equal(t, "b", r.BaselineRegion)
	require.InDelta(t, 0, r.SavedByMovingGCO2, 1e-9, "run at home: nothing saved by moving")
	require.InDelta(t, r.SavedGCO2, r.SavedByWaitingGCO2, 1e-9)

	// Segments in two regions: each moved back to submit, back to back.
	in.Home = "a"
	in.Segments = []SegmentEnergy{
		{Region: "b", Start: start, End: start.Add(time.Hour), OtherKWh: 1},
		{Region: "a", Start: submit.Add(8 * time.Hour), End: submit.Add(9 * time.Hour), OtherKWh: 1},
	}
	r = ComputeReceipt(in)
	atSubmit := 1*1.2*100 + 1*1.5*400.0 // b over [submit, +1h), a over [+1h, +2h)
	require.InDelta(t, atSubmit-r.GCO2, r.SavedByWaitingGCO2, 1e-9)
	require.InDelta(t, r.SavedGCO2, r.SavedByWaitingGCO2+r.SavedByMovingGCO2, 1e-9)
}

// TestReceiptCost checks cost_usd = GPU-hours × the price in force on
// every receipt, with a time-of-use schedule the run crosses.
func TestReceiptCost(t *testing.T) {
	t.Parallel()
	// Cheap 22:00–06:00 at $1, else $4.
	tou := greenq.Region{Name: "tou", PUE: 1.1, GPUPriceUSDPerHour: 4,
		PriceSchedule: []greenq.PriceStep{{FromHour: 22, ToHour: 6, USDPerGPUHour: 1}}}
	at := func(h, m int) time.Time { return time.Date(2026, 3, 1, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name       string
		segs       []SegmentEnergy
		gpus       int
		regions    map[string]greenq.Region
		plan       *greenq.Plan
		cost, hour float64
	}{
		{"cheap hours", []SegmentEnergy{{Region: "tou", Start: at(23, 0), End: at(23, 30), OtherKWh: 1}}, 2, map[string]greenq.Region{"tou": tou}, nil, 2 * 0.5 * 1, 1},
		// 05:30–06:30: half an hour at $1, half an hour at $4.
		{"across the schedule's edge", []SegmentEnergy{{Region: "tou", Start: at(5, 30), End: at(6, 30), OtherKWh: 1}}, 8, map[string]greenq.Region{"tou": tou}, nil, 8 * (0.5*1 + 0.5*4), 8},
		{"a 2 ms echo costs 2 ms", []SegmentEnergy{{Region: "tou", Start: at(12, 0), End: at(12, 0).Add(2 * time.Millisecond)}}, 1, map[string]greenq.Region{"tou": tou}, nil, 4 * (2 * time.Millisecond).Hours(), (2 * time.Millisecond).Hours()},
		{"two segments", []SegmentEnergy{
			{Region: "tou", Start: at(21, 0), End: at(22, 0), OtherKWh: 1},
			{Region: "tou", Start: at(23, 0), End: at(23, 15), OtherKWh: 1}}, 1, map[string]greenq.Region{"tou": tou}, nil, 4 + 0.25, 1.25},
		{"no facts: the plan's price per GPU-hour", []SegmentEnergy{{Region: "x", Start: at(1, 0), End: at(1, 30)}}, 2, nil,
			&greenq.Plan{Region: "x", Start: at(1, 0), End: at(3, 0), ExpectedCostUSD: 10}, 2 * 0.5 * 2.5, 1},
		{"never ran", nil, 100, map[string]greenq.Region{"tou": tou}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ComputeReceipt(ReceiptInput{Segments: tt.segs, GPUs: tt.gpus, Regions: tt.regions, Plan: tt.plan})
			require.InDelta(t, tt.cost, r.CostUSD, 1e-12)
			require.InDelta(t, tt.hour, r.GPUHours, 1e-12)
			require.InDelta(t, r.GPUHours*r.PriceUSDPerGPUHour, r.CostUSD, 1e-12, "cost = GPU-hours × price")
		})
	}
}

// TestReceiptUsesServerFacts checks that the server's region facts beat
// the worker's own configuration: PUE and the embodied factor.
func TestReceiptUsesServerFacts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	in := ReceiptInput{
		Segments: []SegmentEnergy{{Region: "eu-north", Start: t0, End: t0.Add(time.Hour), GPUKWh: 1}},
		PUE:      map[string]float64{"eu-north": 1}, EmbodiedGCO2PerGPUHour: 10, GPUs: 1,
		Regions: map[string]greenq.Region{"eu-north": {Name: "eu-north", PUE: 1.2, EmbodiedGCO2PerGPUHour: 30}},
	}
	r := ComputeReceipt(in)
	require.Equal(t, 1.2, r.PUE)
	require.InDelta(t, 30, r.EmbodiedGCO2, 1e-12)
	in.Regions["eu-north"] = greenq.Region{Name: "eu-north", PUE: 1.2}
	require.InDelta(t, 10, ComputeReceipt(in).EmbodiedGCO2, 1e-12, "a region setting none takes the default")
}
