package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// References cited by the statement format.
const (
	refHenderson = "Henderson, P., Hu, J., Romoff, J., Brunskill, E., Jurafsky, D. and Pineau, J. (2020). Towards the Systematic Reporting of the Energy and Carbon Footprints of Machine Learning. Journal of Machine Learning Research 21(248):1–43."
	refLacoste   = "Lacoste, A., Luccioni, A., Schmidt, V. and Dandres, T. (2019). Quantifying the Carbon Emissions of Machine Learning. arXiv:1910.09700."
)

// renderStatement writes a paragraph a paper can quote and a Markdown
// table with the items Henderson et al. (2020) and Lacoste et al. (2019)
// ask authors to report: hardware, hours, energy, location, intensity and
// its source, emissions, and what was done to reduce them.
func renderStatement(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	t := r.Totals
	fmt.Fprintln(bw, "Environmental impact statement")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, wrap(statementText(r), 80))
	fmt.Fprintln(bw)
	if t.Receipts == 0 {
		return bw.Flush()
	}
	fmt.Fprintln(bw, "| Item | Value | How obtained |")
	fmt.Fprintln(bw, "|---|---|---|")
	item := func(name, value, how string) {
		fmt.Fprintf(bw, "| %s | %s | %s |\n", name, mdEscape(value), mdEscape(how))
	}
	item("Hardware", modelsText(t.GPUModels), "GPU model reported by NVML on the worker")
	item("Compute", fmt.Sprintf("%s GPU-hours in %s", sig(t.GPUHours.Value), plural(t.Receipts, "job")), "run start and end times × GPUs")
	item("Energy (IT)", fig(t.EnergyKWh), pct(t.MeasuredShare)+" measured: "+sourcesText(t.EnergyBySource))
	item("PUE", fig(t.PUE), "data-centre setting per region, energy-weighted")
	item("Energy (facility)", fig(t.FacilityKWh), "IT energy × PUE")
	item("Location", listOrNone(t.Regions), "regions the jobs ran in")
	for _, e := range t.Emissions {
		item("Carbon intensity ("+e.Signal+")", fig(e.Intensity), "mean over the hours run, weighted by energy; "+listOrNone(e.Intensity.Sources))
		item("Emissions ("+e.Signal+", location-based)", fig(e.GCO2), "facility energy × intensity, "+plural(e.Jobs, "job"))
		item("Run-now counterfactual ("+e.Signal+")", fig(e.BaselineGCO2), "same energy at submit time in each job's home region")
		item("Reduction ("+e.Signal+")", fmt.Sprintf("%s (%s): deferring %s, moving %s", fig(e.SavedGCO2), pct(e.SavedShare), pct(e.WaitingShare), pct(e.MovingShare)),
			"counterfactual − emitted; deferring: the regions run in, at submit, against when the jobs ran; moving: the home region against those")
	}
	if t.EmbodiedGCO2.Value > 0 {
		item("Embodied emissions", fig(t.EmbodiedGCO2), "estimated per GPU-hour; not included above")
	} else {
		item("Embodied emissions", "not recorded", "the regions set no embodied factor")
	}
	d := t.Deferral
	item("Carbon-aware scheduling", fmt.Sprintf("%d of %s deferred by %s on average; %d ran outside their home region", d.DeferredJobs, plural(d.StartedJobs, "job"), dur(d.MeanDeferredHours), d.MovedJobs), "greenq: run start − submit, within each job's deadline")
	if t.ReceiptsOnForecast > 0 || t.ReceiptsRestated > 0 {
		item("Intensity basis", fmt.Sprintf("%d of %s on forecasts; %d restated from actuals", t.ReceiptsOnForecast, plural(t.Receipts, "receipt"), t.ReceiptsRestated), "receipts are restated when the provider's actuals for the hours run arrive")
	}
	for _, c := range t.SCI {
		item("SCI per "+c.FunctionalUnit+" ("+c.Signal+")", approx(true, sig(c.Mean)+" "+c.Unit), "ISO/IEC 21031, mean of "+plural(c.Jobs, "job"))
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "Figures are rounded to 3 significant figures; ≈ marks estimates.")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "References")
	fmt.Fprintln(bw, wrap(refHenderson, 80))
	fmt.Fprintln(bw, wrap(refLacoste, 80))
	return bw.Flush()
}

// statementText is the citable paragraph.
func statementText(r Report) string {
	t := r.Totals
	if t.Receipts == 0 {
		return "No job in this selection has a carbon receipt, so there is no energy or emissions figure to report."
	}
	var b strings.Builder
	period := ""
	if !r.Start.IsZero() {
		from, to := r.Start.Format("2 January 2006"), r.End.Format("2 January 2006")
		period = " between " + from + " and " + to
		if from == to {
			period = " on " + from
		}
	}
	fmt.Fprintf(&b, "The computations reported here ran as %s totalling %s GPU-hours on %s, in %s%s. ",
		plural(t.Receipts, "job"), sig(t.GPUHours.Value), modelNames(t.GPUModels), regionText(t.Regions), period)
	var parts []string
	for _, p := range []struct {
		name string
		f    Figure
	}{{"GPU", t.GPUEnergyKWh}, {"CPU", t.CPUEnergyKWh}, {"RAM", t.RAMEnergyKWh}} {
		if p.f.Value > 0 {
			parts = append(parts, p.name+" "+fig(p.f))
		}
	}
	measured := pct(t.MeasuredShare) + " measured, the rest estimated"
	switch {
	case t.EstimatedKWh <= 0:
		measured = "all measured"
	case t.MeasuredKWh <= 0:
		measured = "all estimated"
	}
	fmt.Fprintf(&b, "They drew %s of IT energy (%s; %s), or %s including data-centre overheads (PUE %s). ",
		fig(t.EnergyKWh), strings.Join(parts, ", "), measured, fig(t.FacilityKWh), sig(t.PUE.Value))
	if len(t.Emissions) == 1 {
		e := t.Emissions[0]
		fmt.Fprintf(&b, "At the location-based %s grid carbon intensity of the hours and places they ran (%s on average, from %s), this corresponds to %s of operational emissions. ",
			e.Signal, fig(e.Intensity), strings.Join(e.Intensity.Sources, ", "), fig(e.GCO2))
	} else {
		b.WriteString("Operational emissions are location-based and given per carbon signal, which measure different things and must not be added: ")
		for i, e := range t.Emissions {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "the %s accounted with the %s grid intensity (%s on average, from %s) emitted %s",
				plural(e.Jobs, "job"), e.Signal, fig(e.Intensity), strings.Join(e.Intensity.Sources, ", "), fig(e.GCO2))
		}
		b.WriteString(". ")
	}
	if t.EmbodiedGCO2.Value > 0 {
		fmt.Fprintf(&b, "Manufacturing the hardware adds an estimated %s (embodied, amortised per GPU-hour). ", mass(t.EmbodiedGCO2.Value))
	}
	if n, all := t.ReceiptsOnForecast, t.Receipts; n > 0 {
		fmt.Fprintf(&b, "For %d of the %d jobs the provider had only forecast intensities for some of the hours run when this report was made; their figures will be restated from its actuals. ", n, all)
	}
	d := t.Deferral
	fmt.Fprintf(&b, "To reduce emissions, the jobs were scheduled with greenq, which deferred %d of them by %s on average and ran %d outside their home region, within each job's deadline",
		d.DeferredJobs, dur(d.MeanDeferredHours), d.MovedJobs)
	for i, e := range t.Emissions {
		what := "every job"
		if len(t.Emissions) > 1 {
			what = "the " + plural(e.Jobs, "job") + " on the " + e.Signal + " signal"
		}
		sep := "; "
		if i > 0 {
			sep = ", and "
		}
		home := "their home regions"
		if e.Jobs == 1 {
			home = "its home region"
		}
		fmt.Fprintf(&b, "%srunning %s at once in %s would have emitted an estimated %s, so scheduling saved %s (%s): deferring saved %s, moving saved %s",
			sep, what, home, mass(e.BaselineGCO2.Value), fig(e.SavedGCO2), pct(e.SavedShare), pct(e.WaitingShare), pct(e.MovingShare))
		if e.UnsplitGCO2 != 0 {
			fmt.Fprintf(&b, " (%s from older receipts is not split)", mass(e.UnsplitGCO2))
		}
	}
	b.WriteString(". Reporting follows Henderson et al. (2020) and Lacoste et al. (2019).")
	return b.String()
}

// modelNames lists the GPU models, those no receipt recorded last.
func modelNames(ms []Count) string {
	var names []string
	unrecorded := false
	for _, m := range ms {
		if n := modelName(m.Name); n == unrecordedModel {
			unrecorded = true
		} else {
			names = append(names, n)
		}
	}
	if unrecorded {
		names = append(names, unrecordedModel)
	}
	return andList(names, unrecordedModel)
}

func regionText(rs []string) string {
	if len(rs) == 1 {
		return "region " + rs[0]
	}
	return "regions " + andList(rs, "unrecorded regions")
}

func andList(xs []string, none string) string {
	switch len(xs) {
	case 0:
		return none
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// wrap breaks text into lines of at most width runes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		l := len([]rune(word))
		if i > 0 {
			if n+1+l > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += l
	}
	return b.String()
}
