package worker_test

import (
	"fmt"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/worker"
)

// A one-hour job measured at 0.5 kWh in a region at 50 gCO2e/kWh with PUE
// 1.2, against running at once in a region at 400 gCO2e/kWh.
func ExampleComputeReceipt() {
	t0 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	series := func(region string, v float64) forecast.Series {
		return forecast.Series{Region: region, Source: "file", Signal: forecast.SignalAverage,
			Points: []forecast.Point{{Start: t0.Add(-24 * time.Hour), End: t0.Add(24 * time.Hour), GCO2PerKWh: v, Kind: forecast.KindActual}}}
	}
	r := worker.ComputeReceipt(worker.ReceiptInput{
		Segments: []worker.SegmentEnergy{{Region: "eu-north", Start: t0, End: t0.Add(time.Hour), GPUKWh: 0.45, CPUKWh: 0.05}},
		Series:   map[string]forecast.Series{"eu-north": series("eu-north", 50), "us-east": series("us-east", 400)},
		PUE:      map[string]float64{"eu-north": 1.2, "us-east": 1.2},
		Plan: &greenq.Plan{Region: "eu-north",
			Baseline: greenq.Baseline{Region: "us-east", Start: t0.Add(-10 * time.Hour)}},
		GPUs: 1, EmbodiedGCO2PerGPUHour: 10,
	})
	fmt.Printf("%.2f kWh × PUE %.1f × %.0f g/kWh (%s) = %.1f gCO2e\n",
		r.EnergyKWh, r.PUE, r.IntensityGCO2PerKWh, r.IntensitySource, r.GCO2)
	fmt.Printf("baseline %.1f, saved %.1f, SCI %.1f gCO2e per %s\n", r.BaselineGCO2, r.SavedGCO2, r.SCI, r.FunctionalUnit)
	// Output:
	// 0.50 kWh × PUE 1.2 × 50 g/kWh (file:actual) = 30.0 gCO2e
	// baseline 240.0, saved 210.0, SCI 40.0 gCO2e per job
}
