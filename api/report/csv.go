package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// CSVHeader names the csv format's columns: one row per finished job and
// nothing else, so that a spreadsheet or pandas can sum any column (the
// totals are a separate output: RenderTotals). Numbers are full precision;
// times RFC 3339 UTC; tags k=v;k=v.
//
//	id, name, kind, state, tenant, group, tags, region, gpu_model: the job
//	gpus: GPUs per job
//	submitted_at, start, end: submit, first run start, last run end
//	deferral_s: start − submitted_at
//	gpu_hours: GPUs × run time
//	energy_kwh, gpu_energy_kwh, cpu_energy_kwh, ram_energy_kwh: IT energy
//	measured_kwh: the part of energy_kwh that was metered
//	energy_source, cpu_energy_source: the meters (nvml, rapl, estimate)
//	pue, facility_kwh: PUE and energy × PUE
//	intensity_gco2_per_kwh, intensity_source, signal: the grid carbon
//	  intensity, its provider and kinds, and average | marginal
//	gco2: location-based operational emissions
//	baseline_region, baseline_gco2, saved_gco2: the run-now counterfactual
//	  (the same energy at submit in the home region) and the saving
//	saved_by_waiting_gco2, saved_by_moving_gco2: the saving split (they
//	  add up to saved_gco2)
//	embodied_gco2: hardware manufacture share (estimated, not in gco2)
//	cost_usd: GPU-hours run × the region's price in force (measured)
//	sci, functional_unit: SCI per functional unit
//	utilisation_pct: mean GPU utilisation, empty when not sampled
//	idle_gpu_hours, idle_kwh, idle: idle GPU time, its energy, the flag
//	on_forecast: true while the intensity rests on a forecast for some hours
//	restated_at, gco2_at_finish: when the receipt was restated from
//	  actuals, and its gco2 before (empty when never restated)
var CSVHeader = []string{
	"id", "name", "kind", "state", "tenant", "group", "tags", "region", "gpu_model", "gpus",
	"submitted_at", "start", "end", "deferral_s", "gpu_hours",
	"energy_kwh", "gpu_energy_kwh", "cpu_energy_kwh", "ram_energy_kwh", "measured_kwh",
	"energy_source", "cpu_energy_source", "pue", "facility_kwh",
	"intensity_gco2_per_kwh", "intensity_source", "signal", "gco2",
	"baseline_region", "baseline_gco2", "saved_gco2", "saved_by_waiting_gco2", "saved_by_moving_gco2",
	"embodied_gco2", "cost_usd",
	"sci", "functional_unit", "utilisation_pct", "idle_gpu_hours", "idle_kwh", "idle",
	"on_forecast", "restated_at", "gco2_at_finish",
}

func renderCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, l := range r.Jobs {
		util := ""
		if l.UtilisationPct != nil {
			util = num(*l.UtilisationPct)
		}
		restated, atFinish := "", ""
		if l.RestatedAt != nil {
			restated = stamp(*l.RestatedAt)
		}
		if l.GCO2AtFinish != nil {
			atFinish = num(*l.GCO2AtFinish)
		}
		rec := []string{
			l.ID, l.Name, string(l.Kind), string(l.State), l.Tenant, l.Group, sortedTags(l.Tags), l.Region, l.GPUModel, strconv.Itoa(l.GPUs),
			stamp(l.SubmittedAt), stamp(l.Start), stamp(l.End), num(l.DeferralS), num(l.GPUHours),
			num(l.EnergyKWh), num(l.GPUEnergyKWh), num(l.CPUEnergyKWh), num(l.RAMEnergyKWh), num(l.MeasuredKWh),
			l.EnergySource, l.CPUEnergySource, num(l.PUE), num(l.FacilityKWh),
			num(l.IntensityGCO2PerKWh), l.IntensitySource, sig0(l.Receipt, l.Signal), num(l.GCO2),
			l.BaselineRegion, num(l.BaselineGCO2), num(l.SavedGCO2), num(l.SavedByWaitingGCO2), num(l.SavedByMovingGCO2),
			num(l.EmbodiedGCO2), num(l.CostUSD),
			num(l.SCI), l.FunctionalUnit, util, num(l.IdleGPUHours), num(l.IdleKWh), strconv.FormatBool(l.Idle),
			strconv.FormatBool(l.OnForecast), restated, atFinish,
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// CSVTotalsHeader names the columns of RenderTotals: one row per carbon
// signal (average and marginal emissions are never added together), over
// the finished jobs with a receipt on that signal, then, when some jobs
// are not finished, a row with signal "not-finished" holding their count
// and planned cost and emissions only.
//
//	signal: average | marginal | unspecified | not-finished
//	jobs, receipts, receipts_on_forecast, receipts_restated: counts
//	start, end: the span of the runs
//	deferral_s: Σ run start − submit
//	gpu_hours, energy_kwh, gpu_energy_kwh, cpu_energy_kwh, ram_energy_kwh,
//	  measured_kwh, facility_kwh: sums; pue: energy-weighted
//	intensity_gco2_per_kwh: facility-energy-weighted mean; intensity_source
//	  the providers (;-separated)
//	gco2, baseline_gco2, saved_gco2, saved_by_waiting_gco2,
//	  saved_by_moving_gco2, embodied_gco2: sums
//	cost_usd: measured (receipts); planned_cost_usd, planned_gco2: what
//	  the plans of jobs not finished expect (not-finished row only)
//	idle_gpu_hours, idle_kwh: sums
var CSVTotalsHeader = []string{
	"signal", "jobs", "receipts", "receipts_on_forecast", "receipts_restated", "start", "end", "deferral_s",
	"gpu_hours", "energy_kwh", "gpu_energy_kwh", "cpu_energy_kwh", "ram_energy_kwh", "measured_kwh", "pue", "facility_kwh",
	"intensity_gco2_per_kwh", "intensity_source", "gco2", "baseline_gco2", "saved_gco2",
	"saved_by_waiting_gco2", "saved_by_moving_gco2", "embodied_gco2", "cost_usd",
	"planned_cost_usd", "planned_gco2", "idle_gpu_hours", "idle_kwh",
}

// RenderTotals writes the report's totals as CSV (CSVTotalsHeader), the
// companion of the csv format's job rows.
func RenderTotals(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVTotalsHeader); err != nil {
		return err
	}
	for _, e := range r.Totals.Emissions {
		var lines []JobLine
		for _, l := range r.Jobs {
			if l.Receipt && l.Signal == e.Signal {
				lines = append(lines, l)
			}
		}
		s := summarise("", lines)
		var idleH, idleKWh float64
		for _, l := range lines {
			idleH += l.IdleGPUHours
			idleKWh += l.IdleKWh
		}
		rec := []string{
			e.Signal, strconv.Itoa(s.Jobs), strconv.Itoa(s.Receipts), strconv.Itoa(s.ReceiptsOnForecast), strconv.Itoa(s.ReceiptsRestated),
			stamp(r.Start), stamp(r.End), num(s.Deferral.TotalHours * 3600),
			num(s.GPUHours.Value), num(s.EnergyKWh.Value), num(s.GPUEnergyKWh.Value), num(s.CPUEnergyKWh.Value), num(s.RAMEnergyKWh.Value),
			num(s.MeasuredKWh), num(s.PUE.Value), num(s.FacilityKWh.Value),
			num(e.Intensity.Value), joinSemi(e.Intensity.Sources), num(e.GCO2.Value), num(e.BaselineGCO2.Value), num(e.SavedGCO2.Value),
			num(e.SavedByWaitingGCO2.Value), num(e.SavedByMovingGCO2.Value), num(s.EmbodiedGCO2.Value), num(s.CostUSD.Value),
			"", "", num(idleH), num(idleKWh),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	if n := r.NotFinished; n.Jobs > 0 {
		rec := make([]string, len(CSVTotalsHeader))
		rec[0], rec[1] = "not-finished", strconv.Itoa(n.Jobs)
		rec[25], rec[26] = num(n.ExpectedCostUSD.Value), num(n.ExpectedGCO2.Value)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func sig0(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func joinSemi(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ";"
		}
		out += x
	}
	return out
}
