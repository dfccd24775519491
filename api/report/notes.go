package report

import (
	"fmt"
	"strconv"
	"strings"
)

// notes explains, in sentences any format can show, how the report's
// figures were obtained.
func notes(r Report) []string {
	t := r.Totals
	var n []string
	n = append(n, fmt.Sprintf("The report covers the %d selected jobs that have finished; energy, emissions, hours and cost cover the %d of them that have a carbon receipt.", t.Jobs, t.Receipts))
	if nf := r.NotFinished; nf.Jobs > 0 {
		n = append(n, fmt.Sprintf("%d selected jobs have not finished yet and are in none of the figures above; their plans expect %s and %s.", nf.Jobs, fig(nf.ExpectedCostUSD), fig(nf.ExpectedGCO2)))
	}
	n = append(n, fmt.Sprintf("IT energy is GPU + CPU + RAM: GPU energy is measured where its source is NVML, else power × run time (estimated); CPU energy is measured where its source is a meter such as RAPL; RAM energy is always estimated. %s of IT energy was measured; estimated figures are marked ≈.", pct(t.MeasuredShare)))
	n = append(n, "Facility energy is IT energy × the region's configured PUE; the PUE shown is their energy-weighted ratio.")
	var signals []string
	for _, e := range t.Emissions {
		signals = append(signals, fmt.Sprintf("%s (%s)", e.Signal, strings.Join(e.Intensity.Sources, ", ")))
	}
	if len(signals) > 0 {
		n = append(n, "Emissions are location-based: facility energy × the grid carbon intensity of the hours each job ran, by signal: "+strings.Join(signals, "; ")+".")
	}
	if len(t.Emissions) > 1 {
		n = append(n, "Average and marginal intensities answer different questions (attributional share vs effect of the extra load), so their emissions are reported separately and never added together.")
	}
	n = append(n, "The run-now counterfactual is the same energy at submit time in the job's home region (submit --home, by default the first of its regions); saved = counterfactual − emitted = saved by waiting + saved by moving, where waiting is the regions the job ran in, at submit, against when it ran, and moving is the home region against those regions, both at submit. They rest on the provider's intensities for hours that did not happen here, so they are estimates.")
	if t.ReceiptsOnForecast > 0 || t.ReceiptsRestated > 0 {
		n = append(n, fmt.Sprintf("A receipt written while the provider had only a forecast for the hours run is restated from its actuals when they arrive (its first figure is kept as gco2_at_finish): %d of %d receipts still rest on forecasts, %d were restated.", t.ReceiptsOnForecast, t.Receipts, t.ReceiptsRestated))
	}
	n = append(n, fmt.Sprintf("Deferral is run start − submit; a job counts as deferred when it started %s or more after submission.", strconv.FormatFloat(DeferredAfter.Minutes(), 'g', -1, 64)+" min"))
	n = append(n, "Embodied emissions (hardware manufacture, per GPU-hour) are estimated and not included in operational emissions. SCI is the mean of the receipts' per-job (E·I + M)/R, per functional unit and signal.")
	n = append(n, "Cost is measured: the GPU-hours each job actually ran × its region's price in force while it ran (time-of-use schedules included); jobs not yet finished show their plan's expected cost separately.")
	n = append(n, fmt.Sprintf("GPUs are flagged idle when their mean utilisation (sampled with NVML) is below %s %%; idle GPU-hours = GPU-hours × (1 − utilisation), and their energy apportions GPU energy the same way, an upper bound since idle GPUs draw less than busy ones.", sig(r.Utilisation.IdleBelowPct)))
	n = append(n, "Human-readable figures are rounded to 3 significant figures; JSON and CSV keep full values for re-computation.")
	return n
}
