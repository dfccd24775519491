package report

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// echoJob is a 2 ms job whose worker recorded no GPU model, with a plan
// that expected it to cost $1.28.
func echoJob() *greenq.Job {
	submit := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	start, end := submit, submit.Add(2*time.Millisecond)
	gh := (2 * time.Millisecond).Hours()
	return &greenq.Job{
		ID: "01echo", Name: "echo", State: greenq.StateSucceeded, GPUs: 1, SubmittedAt: submit,
		Run:      &greenq.Run{Region: "uk-south", StartedAt: start, FinishedAt: &end},
		Segments: []greenq.RunSegment{{Region: "uk-south", Start: start, End: end, EnergyKWh: 1.7e-7}},
		Plan:     &greenq.Plan{Region: "uk-south", ExpectedCostUSD: 1.28, Baseline: greenq.Baseline{Region: "uk-south"}},
		Receipt: &greenq.Receipt{EnergyKWh: 1.7e-7, GPUEnergyKWh: 1.7e-7, EnergySource: "estimate", PUE: 1.2,
			IntensityGCO2PerKWh: 200, IntensitySource: "file:replay(2023):forecast", Signal: "average",
			GCO2: 1.7e-7 * 1.2 * 200, BaselineGCO2: 1.7e-7 * 1.2 * 200, BaselineRegion: "uk-south", DurationS: 0.002,
			GPUHours: gh, CostUSD: gh * 1.277, PriceUSDPerGPUHour: 1.277},
	}
}

// TestReportCostIsMeasured is the case: a 2 ms echo costs what
// 2 ms of a GPU cost, not the plan's $1.28, and a 100-GPU job that never
// ran costs nothing; planned cost shows apart for jobs not yet run.
func TestReportCostIsMeasured(t *testing.T) {
	t.Parallel()
	never := &greenq.Job{ID: "01big", Name: "big", State: greenq.StateExpired, GPUs: 100,
		SubmittedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Plan: &greenq.Plan{Region: "uk-south", ExpectedCostUSD: 127.7}}
	waiting := &greenq.Job{ID: "01wait", Name: "wait", State: greenq.StatePlanned, GPUs: 2,
		SubmittedAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Plan: &greenq.Plan{Region: "uk-south", ExpectedCostUSD: 5, ExpectedGCO2: 40}}
	r := Build([]*greenq.Job{echoJob(), never, waiting}, Options{})
	require.InDelta(t, (2*time.Millisecond).Hours()*1.277, r.Totals.CostUSD.Value, 1e-15)
	require.Equal(t, BasisMeasured, r.Totals.CostUSD.Basis)
	require.Equal(t, 2, r.Totals.Jobs, "finished jobs only")
	require.Equal(t, 1, r.NotFinished.Jobs)
	require.Equal(t, 5.0, r.NotFinished.ExpectedCostUSD.Value)
	require.Equal(t, BasisPlanned, r.NotFinished.ExpectedCostUSD.Basis)
	require.Equal(t, 1, r.Totals.ReceiptsOnForecast)

	var buf bytes.Buffer
	require.NoError(t, Render(&buf, r, "table"))
	require.Regexp(t, `Jobs\s+2 \(succeeded 1, expired 1\)`, buf.String())
	require.Regexp(t, `Not finished yet \(not above\)\s+1 \(planned 1\)`, buf.String())
	require.Regexp(t, `planned cost\s+≈\$5\.00`, buf.String())
}

// TestStatementWording: no "(none)" for a GPU model nobody recorded, and
// the statement says how many receipts rest on forecasts.
func TestStatementWording(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, Build([]*greenq.Job{echoJob()}, Options{}), "statement"))
	text := strings.Join(strings.Fields(buf.String()), " ")
	require.NotContains(t, text, "(none)")
	require.Contains(t, text, "GPU-hours on GPUs of unrecorded model, in region uk-south")
	require.Contains(t, text, "For 1 of the 1 jobs the provider had only forecast intensities")
	require.Contains(t, text, "| Hardware | GPUs of unrecorded model (1 job,")
}

// TestOldReceiptsWithoutSplit: a receipt written before savings were
// split counts as waiting when the job ran at home, and as unsplit, in
// neither share, when it ran elsewhere.
func TestOldReceiptsWithoutSplit(t *testing.T) {
	t.Parallel()
	home, away := echoJob(), echoJob()
	home.ID, away.ID = "01home", "01away"
	home.Receipt.BaselineGCO2, home.Receipt.SavedGCO2 = 10, 10-home.Receipt.GCO2
	away.Receipt.BaselineGCO2, away.Receipt.SavedGCO2, away.Receipt.BaselineRegion = 30, 30-away.Receipt.GCO2, "us-west"
	e := Build([]*greenq.Job{home, away}, Options{}).Totals.Emissions[0]
	require.InDelta(t, home.Receipt.SavedGCO2, e.SavedByWaitingGCO2.Value, 1e-12)
	require.Zero(t, e.SavedByMovingGCO2.Value)
	require.InDelta(t, away.Receipt.SavedGCO2, e.UnsplitGCO2, 1e-12)
}

// TestCodeCarbonFormat writes CodeCarbon's emissions.csv: its header, one
// row per job with a receipt, emissions in kg.
func TestCodeCarbonFormat(t *testing.T) {
	t.Parallel()
	r := Build(loadJobs(t), Options{})
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, r, "codecarbon"))
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	// CodeCarbon's EmissionsData fields, in order (mlco2/codecarbon,
	// codecarbon/output_methods/emissions_data.py).
	require.Equal(t, []string{"timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
		"emissions_rate", "cpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "cpu_power", "gpu_power",
		"ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "water_consumed", "country_name",
		"country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
		"cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude", "ram_total_size", "tracking_mode",
		"on_cloud", "pue", "wue"}, recs[0])
	require.Len(t, recs, 1+r.Totals.Receipts)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	f := func(rec []string, c string) float64 {
		v, err := strconv.ParseFloat(rec[col[c]], 64)
		require.NoError(t, err, c)
		return v
	}
	var kg float64
	for _, rec := range recs[1:] {
		kg += f(rec, "emissions")
		require.InDelta(t, f(rec, "cpu_energy")+f(rec, "gpu_energy")+f(rec, "ram_energy"), f(rec, "energy_consumed"), 1e-9)
		require.InDelta(t, f(rec, "emissions")/f(rec, "duration"), f(rec, "emissions_rate"), 1e-15)
		if rec[col["run_id"]] == "j01" {
			require.Equal(t, "2023-01-10T12:00:00", rec[col["timestamp"]])
			require.Equal(t, "bert-base", rec[col["project_name"]])
			require.Equal(t, "ca-on", rec[col["region"]])
			require.Equal(t, 7200.0, f(rec, "duration"))
			require.InDelta(t, 0.0564459, f(rec, "emissions"), 1e-12)
			require.InDelta(t, 0.6*1000/2, f(rec, "gpu_power"), 1e-9, "mean watts over the run")
			require.Equal(t, "1", rec[col["gpu_count"]])
			require.Equal(t, "NVIDIA A100-SXM4-80GB", rec[col["gpu_model"]])
			require.Equal(t, "1.2", rec[col["pue"]])
		}
	}
	var g float64
	for _, e := range r.Totals.Emissions {
		g += e.GCO2.Value
	}
	require.InDelta(t, g/1000, kg, 1e-9)
}
