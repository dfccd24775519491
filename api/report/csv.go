package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// CSVHeader names the csv format's columns. Each job is one row; then a
// row with id TOTAL for each carbon signal sums the jobs with a receipt on
// that signal (average and marginal emissions are never added together).
// Numbers are full precision; times RFC 3339 UTC; tags k=v;k=v.
//
//	id, name, kind, state, tenant, group, tags, region, gpu_model: the job
//	gpus: GPUs per job (TOTAL: their sum)
//	submitted_at, start, end: submit, first run start, last run end
//	deferral_s: start − submitted_at (TOTAL: sum over the row's jobs)
//	gpu_hours: GPUs × run time
//	energy_kwh, gpu_energy_kwh, cpu_energy_kwh, ram_energy_kwh: IT energy
//	measured_kwh: the part of energy_kwh that was metered
//	energy_source, cpu_energy_source: the meters (nvml, rapl, estimate)
//	pue, facility_kwh: PUE (TOTAL: energy-weighted) and energy × PUE
//	intensity_gco2_per_kwh, intensity_source, signal: the grid carbon
//	  intensity (TOTAL: facility-energy-weighted mean), its provider, and
//	  average | marginal
//	gco2: location-based operational emissions
//	baseline_region, baseline_gco2, saved_gco2: the run-now counterfactual
//	embodied_gco2: hardware manufacture share (estimated, not in gco2)
//	cost_usd: the plan's expected cost
//	sci, functional_unit: SCI per functional unit (TOTAL: empty)
//	utilisation_pct: mean GPU utilisation, empty when not sampled
//	idle_gpu_hours, idle_kwh, idle: idle GPU time, its energy, the flag
var CSVHeader = []string{
	"id", "name", "kind", "state", "tenant", "group", "tags", "region", "gpu_model", "gpus",
	"submitted_at", "start", "end", "deferral_s", "gpu_hours",
	"energy_kwh", "gpu_energy_kwh", "cpu_energy_kwh", "ram_energy_kwh", "measured_kwh",
	"energy_source", "cpu_energy_source", "pue", "facility_kwh",
	"intensity_gco2_per_kwh", "intensity_source", "signal", "gco2",
	"baseline_region", "baseline_gco2", "saved_gco2", "embodied_gco2", "cost_usd",
	"sci", "functional_unit", "utilisation_pct", "idle_gpu_hours", "idle_kwh", "idle",
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
		rec := []string{
			l.ID, l.Name, string(l.Kind), string(l.State), l.Tenant, l.Group, sortedTags(l.Tags), l.Region, l.GPUModel, strconv.Itoa(l.GPUs),
			stamp(l.SubmittedAt), stamp(l.Start), stamp(l.End), num(l.DeferralS), num(l.GPUHours),
			num(l.EnergyKWh), num(l.GPUEnergyKWh), num(l.CPUEnergyKWh), num(l.RAMEnergyKWh), num(l.MeasuredKWh),
			l.EnergySource, l.CPUEnergySource, num(l.PUE), num(l.FacilityKWh),
			num(l.IntensityGCO2PerKWh), l.IntensitySource, sig0(l.Receipt, l.Signal), num(l.GCO2),
			l.BaselineRegion, num(l.BaselineGCO2), num(l.SavedGCO2), num(l.EmbodiedGCO2), num(l.CostUSD),
			num(l.SCI), l.FunctionalUnit, util, num(l.IdleGPUHours), num(l.IdleKWh), strconv.FormatBool(l.Idle),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	for _, e := range r.Totals.Emissions {
		var lines []JobLine
		for _, l := range r.Jobs {
			if l.Receipt && l.Signal == e.Signal {
				lines = append(lines, l)
			}
		}
		s := summarise("", lines)
		var gpus int
		var idleH, idleKWh float64
		for _, l := range lines {
			gpus += l.GPUs
			idleH += l.IdleGPUHours
			idleKWh += l.IdleKWh
		}
		rec := []string{
			"TOTAL", "", "", "", "", "", "", "", "", strconv.Itoa(gpus),
			"", stamp(r.Start), stamp(r.End), num(s.Deferral.TotalHours * 3600), num(s.GPUHours.Value),
			num(s.EnergyKWh.Value), num(s.GPUEnergyKWh.Value), num(s.CPUEnergyKWh.Value), num(s.RAMEnergyKWh.Value), num(s.MeasuredKWh),
			"", "", num(s.PUE.Value), num(s.FacilityKWh.Value),
			num(e.Intensity.Value), joinSemi(e.Intensity.Sources), e.Signal, num(e.GCO2.Value),
			"", num(e.BaselineGCO2.Value), num(e.SavedGCO2.Value), num(s.EmbodiedGCO2.Value), num(s.CostUSD.Value),
			"", "", "", num(idleH), num(idleKWh), "",
		}
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
