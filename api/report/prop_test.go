package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/greenq/greenq"
)

// genJob draws a job that may or may not have run and left a receipt.
func genJob(t *rapid.T, i int) *greenq.Job {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	submit := base.Add(time.Duration(rapid.IntRange(0, 90*24).Draw(t, "submitH")) * time.Hour)
	j := &greenq.Job{
		ID: fmt.Sprintf("j%03d", i), Name: rapid.SampledFrom([]string{"a", "b|c", "d_e"}).Draw(t, "name"),
		State:       rapid.SampledFrom(greenq.States).Draw(t, "state"),
		Tenant:      rapid.SampledFrom([]string{"", "alice", "bob"}).Draw(t, "tenant"),
		SubmittedAt: submit, GPUs: rapid.IntRange(1, 8).Draw(t, "gpus"),
		Tags: map[string]string{"team": rapid.SampledFrom([]string{"x", "y"}).Draw(t, "team")},
	}
	if !rapid.Bool().Draw(t, "ran") {
		return j
	}
	region := rapid.SampledFrom([]string{"r1", "r2", "r3"}).Draw(t, "region")
	start := submit.Add(time.Duration(rapid.IntRange(0, 48*60).Draw(t, "waitMin")) * time.Minute)
	d := time.Duration(rapid.IntRange(1, 600).Draw(t, "runMin")) * time.Minute
	end := start.Add(d)
	j.Run = &greenq.Run{Region: region, StartedAt: start, FinishedAt: &end}
	j.Plan = &greenq.Plan{Region: region, ExpectedCostUSD: rapid.Float64Range(0, 100).Draw(t, "cost")}
	if !rapid.Bool().Draw(t, "receipt") {
		return j
	}
	// A receipt is on a finished job.
	j.State = rapid.SampledFrom([]greenq.State{greenq.StateSucceeded, greenq.StateFailed, greenq.StateCancelled}).Draw(t, "finalState")
	gpu := rapid.Float64Range(0, 50).Draw(t, "gpu")
	cpu := rapid.Float64Range(0, 5).Draw(t, "cpu")
	ram := rapid.Float64Range(0, 1).Draw(t, "ram")
	pue := rapid.Float64Range(1, 2).Draw(t, "pue")
	in := rapid.Float64Range(0, 800).Draw(t, "intensity")
	e := gpu + cpu + ram
	g := e * pue * in
	bg := e * pue * rapid.Float64Range(0, 800).Draw(t, "baselineIntensity")
	atSubmit := e * pue * rapid.Float64Range(0, 800).Draw(t, "atSubmitIntensity")
	price := rapid.Float64Range(0, 5).Draw(t, "price")
	gh := float64(j.GPUs) * d.Hours()
	j.Receipt = &greenq.Receipt{
		SavedByWaitingGCO2: atSubmit - g, SavedByMovingGCO2: bg - atSubmit,
		GPUHours: gh, PriceUSDPerGPUHour: price, CostUSD: gh * price,
		EnergyKWh: e, GPUEnergyKWh: gpu, CPUEnergyKWh: cpu, RAMEnergyKWh: ram,
		EnergySource: rapid.SampledFrom([]greenq.EnergySource{"nvml", "estimate", ""}).Draw(t, "src"), PUE: pue,
		IntensityGCO2PerKWh: in, IntensitySource: "file:actual",
		Signal: rapid.SampledFrom([]string{"average", "marginal", ""}).Draw(t, "signal"),
		GCO2:   g, BaselineGCO2: bg, SavedGCO2: bg - g, DurationS: d.Seconds(),
		GPUUtilizationPct: rapid.Float64Range(0, 100).Draw(t, "util"),
	}
	return j
}

func TestBuildProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		jobs := make([]*greenq.Job, n)
		for i := range jobs {
			jobs[i] = genJob(t, i)
		}
		r := Build(jobs, Options{})
		var receipts, finished int
		var kwh, cost float64
		gco2 := map[string]float64{}
		for _, j := range jobs {
			if j.State.Final() {
				finished++
			}
			if j.Receipt != nil {
				cost += j.Receipt.CostUSD
				receipts++
				kwh += j.Receipt.EnergyKWh
				sg := j.Receipt.Signal
				if sg == "" {
					sg = "unspecified"
				}
				gco2[sg] += j.Receipt.GCO2
			}
		}
		require.Equal(t, finished, r.Totals.Jobs, "finished jobs only")
		require.Equal(t, n-finished, r.NotFinished.Jobs)
		require.Equal(t, receipts, r.Totals.Receipts)
		require.InDelta(t, cost, r.Totals.CostUSD.Value, 1e-6, "cost sums the receipts")
		require.InDelta(t, kwh, r.Totals.EnergyKWh.Value, 1e-6)
		require.InDelta(t, kwh, r.Totals.MeasuredKWh+r.Totals.EstimatedKWh, 1e-6)
		require.Len(t, r.Totals.Emissions, len(gco2))
		for _, e := range r.Totals.Emissions {
			require.InDelta(t, gco2[e.Signal], e.GCO2.Value, 1e-6)
			require.InDelta(t, e.BaselineGCO2.Value-e.GCO2.Value, e.SavedGCO2.Value, 1e-6)
			require.InDelta(t, e.SavedGCO2.Value, e.SavedByWaitingGCO2.Value+e.SavedByMovingGCO2.Value, 1e-6)
		}
		var regionKWh float64
		for _, g := range r.ByRegion {
			regionKWh += g.EnergyKWh.Value
		}
		require.InDelta(t, kwh, regionKWh, 1e-6)
		if receipts > 0 {
			require.GreaterOrEqual(t, r.Totals.PUE.Value, 1.0-1e-9)
			require.LessOrEqual(t, r.Totals.PUE.Value, 2.0+1e-9)
		}
		for _, f := range Formats {
			var buf bytes.Buffer
			require.NoError(t, Render(&buf, r, f), f)
			if f == "csv" {
				recs, err := csv.NewReader(&buf).ReadAll()
				require.NoError(t, err)
				require.Len(t, recs, 1+finished, "header and a row per finished job, no totals")
			}
			if f == "codecarbon" {
				recs, err := csv.NewReader(&buf).ReadAll()
				require.NoError(t, err)
				require.Len(t, recs, 1+receipts, "header and a row per job with a receipt")
			}
		}
		var buf bytes.Buffer
		require.NoError(t, RenderTotals(&buf, r))
		recs, err := csv.NewReader(&buf).ReadAll()
		require.NoError(t, err)
		notFinished := 0
		if n > finished {
			notFinished = 1
		}
		require.Len(t, recs, 1+len(gco2)+notFinished, "header, a row per signal, the jobs not finished")
	})
}
