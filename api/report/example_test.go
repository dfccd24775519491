package report_test

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api/report"
)

func ExampleBuild() {
	submit := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	start, end := submit.Add(6*time.Hour), submit.Add(7*time.Hour)
	jobs := []*greenq.Job{{
		ID: "j1", Name: "bert", State: greenq.StateSucceeded, GPUs: 1, SubmittedAt: submit,
		Tags: map[string]string{"paper": "x"},
		Run:  &greenq.Run{Region: "eu-north", StartedAt: start, FinishedAt: &end},
		Receipt: &greenq.Receipt{
			EnergyKWh: 0.3, GPUEnergyKWh: 0.3, EnergySource: "nvml", PUE: 1.1,
			IntensityGCO2PerKWh: 40, IntensitySource: "electricitymaps:actual", Signal: "average",
			GCO2: 13.2, BaselineGCO2: 99, SavedGCO2: 85.8, DurationS: 3600,
		},
	}}
	r := report.Build(jobs, report.Options{Tags: map[string]string{"paper": "x"}})
	e := r.Totals.Emissions[0]
	fmt.Printf("%s: %.1f gCO2e emitted (%s), %.1f saved (%s), after %.0f h\n",
		e.Signal, e.GCO2.Value, e.GCO2.Basis, e.SavedGCO2.Value, e.SavedGCO2.Basis, r.Totals.Deferral.TotalHours)
	// Output: average: 13.2 gCO2e emitted (measured), 85.8 saved (counterfactual), after 6 h
}

func ExampleParseOptions() {
	q, _ := url.ParseQuery("tag=paper=neurips-x&tenant=alice&from=2026-01-01&format=statement")
	o, err := report.ParseOptions(q)
	fmt.Println(o.Tags["paper"], o.Tenant, o.From.Format(time.RFC3339), err)

	_, err = report.ParseOptions(url.Values{"to": {"next week"}})
	fmt.Println(err)
	// Output:
	// neurips-x alice 2026-01-01T00:00:00Z <nil>
	// to: want an RFC 3339 time such as 2026-01-02T15:04:05Z or a date 2026-01-02, got "next week"
}

func ExampleRender() {
	submit := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	start, end := submit.Add(6*time.Hour), submit.Add(7*time.Hour)
	jobs := []*greenq.Job{{
		ID: "j1", Name: "bert", State: greenq.StateSucceeded, GPUs: 1, SubmittedAt: submit,
		Run:  &greenq.Run{Region: "eu-north", StartedAt: start, FinishedAt: &end},
		Plan: &greenq.Plan{Region: "eu-north", ExpectedCostUSD: 2.5, Baseline: greenq.Baseline{Region: "us-west"}},
		Receipt: &greenq.Receipt{
			EnergyKWh: 0.3, GPUEnergyKWh: 0.3, EnergySource: "nvml", PUE: 1.1,
			IntensityGCO2PerKWh: 40, IntensitySource: "electricitymaps:actual", Signal: "average",
			GCO2: 13.2, BaselineGCO2: 99, SavedGCO2: 85.8, DurationS: 3600, GPUModel: "NVIDIA H100",
			BaselineRegion: "us-west", SavedByWaitingGCO2: 4.4, SavedByMovingGCO2: 81.4,
			GPUHours: 1, CostUSD: 2.5, PriceUSDPerGPUHour: 2.5,
		},
	}}
	if err := report.Render(os.Stdout, report.Build(jobs, report.Options{}), "statement"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Environmental impact statement
	//
	// The computations reported here ran as 1 job totalling 1.00 GPU-hours on NVIDIA
	// H100, in region eu-north on 1 March 2026. They drew 300 Wh of IT energy (GPU 300
	// Wh; all measured), or 330 Wh including data-centre overheads (PUE 1.10). At the
	// location-based average grid carbon intensity of the hours and places they ran
	// (40.0 gCO2e/kWh on average, from electricitymaps:actual), this corresponds to
	// 13.2 gCO2e of operational emissions. To reduce emissions, the jobs were
	// scheduled with greenq, which deferred 1 of them by 6.00 h on average and ran 1
	// outside their home region, within each job's deadline; running every job at once
	// in its home region would have emitted an estimated 99.0 gCO2e, so scheduling
	// saved ≈85.8 gCO2e (87 %): deferring saved 4 %, moving saved 82 %. Reporting
	// follows Henderson et al. (2020) and Lacoste et al. (2019).
	//
	// | Item | Value | How obtained |
	// |---|---|---|
	// | Hardware | NVIDIA H100 (1 job, 1.00 GPU-h) | GPU model reported by NVML on the worker |
	// | Compute | 1.00 GPU-hours in 1 job | run start and end times × GPUs |
	// | Energy (IT) | 300 Wh | 100 % measured: metered by gpu:nvml |
	// | PUE | 1.10 | data-centre setting per region, energy-weighted |
	// | Energy (facility) | 330 Wh | IT energy × PUE |
	// | Location | eu-north | regions the jobs ran in |
	// | Carbon intensity (average) | 40.0 gCO2e/kWh | mean over the hours run, weighted by energy; electricitymaps:actual |
	// | Emissions (average, location-based) | 13.2 gCO2e | facility energy × intensity, 1 job |
	// | Run-now counterfactual (average) | ≈99.0 gCO2e | same energy at submit time in each job's home region |
	// | Reduction (average) | ≈85.8 gCO2e (87 %): deferring 4 %, moving 82 % | counterfactual − emitted; deferring: the regions run in, at submit, against when the jobs ran; moving: the home region against those |
	// | Embodied emissions | not recorded | the regions set no embodied factor |
	// | Carbon-aware scheduling | 1 of 1 job deferred by 6.00 h on average; 1 ran outside their home region | greenq: run start − submit, within each job's deadline |
	//
	// Figures are rounded to 3 significant figures; ≈ marks estimates.
	//
	// References
	// Henderson, P., Hu, J., Romoff, J., Brunskill, E., Jurafsky, D. and Pineau, J.
	// (2020). Towards the Systematic Reporting of the Energy and Carbon Footprints of
	// Machine Learning. Journal of Machine Learning Research 21(248):1–43.
	// Lacoste, A., Luccioni, A., Schmidt, V. and Dandres, T. (2019). Quantifying the
	// Carbon Emissions of Machine Learning. arXiv:1910.09700.
}
