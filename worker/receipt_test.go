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
