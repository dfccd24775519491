package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// Formats lists what Render writes:
//
//   - table: aligned plain text for a terminal;
//   - json: the Report as JSON, full precision;
//   - csv: one row per job (CSVHeader); the totals, a row per carbon
//     signal, are a separate CSV (RenderTotals, CSVTotalsHeader);
//   - codecarbon: one row per job with a receipt in CodeCarbon's
//     emissions.csv columns (CodeCarbonHeader), for its dashboards;
//   - markdown: the table format's sections as Markdown;
//   - html: one self-contained page, inline CSS and SVG plots, no scripts;
//   - statement: a citable paragraph and table for a paper.
var Formats = []string{"table", "json", "csv", "markdown", "html", "statement", "codecarbon"}

// Render writes r in format (one of Formats; "" means table). An unknown
// format is an invalid-argument error naming the "format" field.
func Render(w io.Writer, r Report, format string) error {
	var err error
	switch format {
	case "", "table":
		err = renderText(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	case "csv":
		err = renderCSV(w, r)
	case "markdown", "md":
		err = renderMarkdown(w, r)
	case "html":
		err = renderHTML(w, r)
	case "statement":
		err = renderStatement(w, r)
	case "codecarbon":
		err = renderCodeCarbon(w, r)
	default:
		return greenq.Invalid("format", "want one of %s, got %q", strings.Join(Formats, ", "), format)
	}
	if err != nil {
		return fmt.Errorf("render %s report: %w", format, err)
	}
	return nil
}

// ContentType returns the media type of a format, for HTTP responses.
func ContentType(format string) string {
	switch format {
	case "json":
		return "application/json"
	case "csv", "codecarbon":
		return "text/csv; charset=utf-8"
	case "markdown", "md":
		return "text/markdown; charset=utf-8"
	case "html":
		return "text/html; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// row is one labelled total as people read it. Key and Raw let the HTML
// page carry the exact value beside the rounded one.
type row struct {
	Key, Label, Value, How string
	Raw                    float64
}

// table is a titled grid of cells, rendered by each human format.
type table struct {
	Title string
	Head  []string
	Rows  [][]string
	// Right marks numeric columns, aligned right.
	Right []bool
}

// totalsRows lists a summary's figures in reading order.
func totalsRows(s Summary) []row {
	rows := []row{
		{Key: "jobs", Label: "Jobs", Value: fmt.Sprintf("%d (%s)", s.Jobs, statesText(s.JobsByState)), How: "job records", Raw: float64(s.Jobs)},
		{Key: "receipts", Label: "Jobs with a carbon receipt", Value: fmt.Sprint(s.Receipts), How: "job records", Raw: float64(s.Receipts)},
		{Key: "gpu_hours", Label: "GPU-hours", Value: fig(s.GPUHours), How: how(s.GPUHours), Raw: s.GPUHours.Value},
		{Key: "energy_kwh", Label: "IT energy", Value: fig(s.EnergyKWh), How: fmt.Sprintf("%s, %s measured: %s", s.EnergyKWh.Basis, pct(s.MeasuredShare), sourcesText(s.EnergyBySource)), Raw: s.EnergyKWh.Value},
		{Key: "gpu_energy_kwh", Label: "  GPU energy", Value: fig(s.GPUEnergyKWh), How: how(s.GPUEnergyKWh), Raw: s.GPUEnergyKWh.Value},
		{Key: "cpu_energy_kwh", Label: "  CPU energy", Value: fig(s.CPUEnergyKWh), How: how(s.CPUEnergyKWh), Raw: s.CPUEnergyKWh.Value},
		{Key: "ram_energy_kwh", Label: "  RAM energy", Value: fig(s.RAMEnergyKWh), How: how(s.RAMEnergyKWh), Raw: s.RAMEnergyKWh.Value},
		{Key: "pue", Label: "PUE", Value: fig(s.PUE), How: how(s.PUE), Raw: s.PUE.Value},
		{Key: "facility_kwh", Label: "Facility energy", Value: fig(s.FacilityKWh), How: how(s.FacilityKWh), Raw: s.FacilityKWh.Value},
	}
	for _, e := range s.Emissions {
		sg := e.Signal
		rows = append(rows,
			row{Key: "intensity." + sg, Label: "Grid intensity (" + sg + ")", Value: fig(e.Intensity), How: "facility-energy-weighted mean; " + how(e.Intensity), Raw: e.Intensity.Value},
			row{Key: "gco2." + sg, Label: "Emissions, location-based (" + sg + ")", Value: fig(e.GCO2), How: fmt.Sprintf("%s; energy %s × intensity from %s", plural(e.Jobs, "job"), e.GCO2.Basis, strings.Join(e.GCO2.Sources, ", ")), Raw: e.GCO2.Value},
			row{Key: "baseline_gco2." + sg, Label: "Run-now counterfactual (" + sg + ")", Value: fig(e.BaselineGCO2), How: how(e.BaselineGCO2), Raw: e.BaselineGCO2.Value},
			row{Key: "saved_gco2." + sg, Label: "Saved (" + sg + ")", Value: fig(e.SavedGCO2), How: fmt.Sprintf("%s of the counterfactual; %s", pct(e.SavedShare), how(e.SavedGCO2)), Raw: e.SavedGCO2.Value},
			row{Key: "saved_by_waiting_gco2." + sg, Label: "  by waiting (" + sg + ")", Value: fig(e.SavedByWaitingGCO2), How: fmt.Sprintf("%s of the counterfactual; %s", pct(e.WaitingShare), how(e.SavedByWaitingGCO2)), Raw: e.SavedByWaitingGCO2.Value},
			row{Key: "saved_by_moving_gco2." + sg, Label: "  by moving (" + sg + ")", Value: fig(e.SavedByMovingGCO2), How: fmt.Sprintf("%s of the counterfactual; %s", pct(e.MovingShare), how(e.SavedByMovingGCO2)), Raw: e.SavedByMovingGCO2.Value},
		)
		if e.UnsplitGCO2 != 0 {
			rows = append(rows, row{Key: "unsplit_gco2." + sg, Label: "  not split (" + sg + ")", Value: approx(true, mass(e.UnsplitGCO2)), How: "receipts written before savings were split, of jobs run outside their home region", Raw: e.UnsplitGCO2})
		}
	}
	d := s.Deferral
	rows = append(rows,
		row{Key: "embodied_gco2", Label: "Embodied emissions (not in the above)", Value: fig(s.EmbodiedGCO2), How: how(s.EmbodiedGCO2), Raw: s.EmbodiedGCO2.Value},
		row{Key: "deferral_hours", Label: "Deferral", Value: fmt.Sprintf("%d of %s deferred, %s on average (max %s); %d ran outside their home region", d.DeferredJobs, plural(d.StartedJobs, "job"), dur(d.MeanDeferredHours), dur(d.MaxHours), d.MovedJobs), How: "measured (run start − submit)", Raw: d.TotalHours},
		row{Key: "cost_usd", Label: "Cost", Value: fig(s.CostUSD), How: how(s.CostUSD), Raw: s.CostUSD.Value},
		row{Key: "receipts_on_forecast", Label: "Receipts on forecast intensities", Value: fmt.Sprintf("%d of %d (%d restated from actuals)", s.ReceiptsOnForecast, s.Receipts, s.ReceiptsRestated), How: "receipts (provider:kind); restated when the provider's actuals arrive", Raw: float64(s.ReceiptsOnForecast)},
		row{Key: "gpu_models", Label: "Hardware", Value: modelsText(s.GPUModels), How: "receipts (NVML device name)"},
		row{Key: "regions", Label: "Regions", Value: listOrNone(s.Regions), How: "runs"},
		row{Key: "intensity_sources", Label: "Intensity sources", Value: listOrNone(s.IntensitySources), How: "receipts (provider:kind)"},
	)
	for _, c := range s.SCI {
		rows = append(rows, row{Key: "sci." + c.FunctionalUnit + "." + c.Signal, Label: fmt.Sprintf("SCI per %s (%s)", c.FunctionalUnit, c.Signal),
			Value: approx(true, sig(c.Mean)+" "+c.Unit), How: fmt.Sprintf("mean of %s (range %s–%s)", plural(c.Jobs, "job"), sig(c.Min), sig(c.Max)), Raw: c.Mean})
	}
	return rows
}

// reportRows are the totals' rows, then the jobs not finished yet.
func reportRows(r Report) []row {
	rows := totalsRows(r.Totals)
	n := r.NotFinished
	if n.Jobs == 0 {
		return rows
	}
	held := ""
	if n.Held > 0 {
		held = fmt.Sprintf("; %d held by their price cap", n.Held)
	}
	return append(rows,
		row{Key: "not_finished", Label: "Not finished yet (not above)", Value: fmt.Sprintf("%d (%s)", n.Jobs, statesText(n.JobsByState)), How: fmt.Sprintf("job records; %d with a plan%s", n.Planned, held), Raw: float64(n.Jobs)},
		row{Key: "planned_cost_usd", Label: "  planned cost", Value: fig(n.ExpectedCostUSD), How: how(n.ExpectedCostUSD), Raw: n.ExpectedCostUSD.Value},
		row{Key: "planned_gco2", Label: "  planned emissions", Value: fig(n.ExpectedGCO2), How: how(n.ExpectedGCO2), Raw: n.ExpectedGCO2.Value},
	)
}

// sourcesText splits energy sources (part:source keys) into meters and
// estimates.
func sourcesText(bySource map[string]float64) string {
	var meters, models []string
	for _, k := range sortedKeys(bySource) {
		_, src, _ := strings.Cut(k, ":")
		if measuredSource(src) {
			meters = append(meters, k)
		} else {
			models = append(models, k)
		}
	}
	var parts []string
	if len(meters) > 0 {
		parts = append(parts, "metered by "+strings.Join(meters, ", "))
	}
	if len(models) > 0 {
		parts = append(parts, "estimated for "+strings.Join(models, ", "))
	}
	return strings.Join(parts, "; ")
}

func statesText(m map[greenq.State]int) string {
	var parts []string
	for _, st := range greenq.States {
		if n := m[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	return strings.Join(parts, ", ")
}

func modelsText(ms []Count) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s (%s, %s GPU-h)", modelName(m.Name), plural(m.Jobs, "job"), sig(m.GPUHours)))
	}
	return listOrNone(parts)
}

// unrecordedModel is how people read a GPU model no receipt recorded.
const unrecordedModel = "GPUs of unrecorded model"

// modelName is a GPU model as people read it.
func modelName(name string) string {
	if name == "" || name == "(none)" {
		return unrecordedModel
	}
	return name
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// signalsOf lists the carbon signals in the totals, for per-signal columns.
func signalsOf(r Report) []string {
	var out []string
	for _, e := range r.Totals.Emissions {
		out = append(out, e.Signal)
	}
	return out
}

func emissionsFor(s Summary, signal string) (Emissions, bool) {
	for _, e := range s.Emissions {
		if e.Signal == signal {
			return e, true
		}
	}
	return Emissions{}, false
}

// breakdownTable lays out one breakdown, a gCO2e and saved column per signal.
func breakdownTable(title, keyHead string, groups []Summary, signals []string) table {
	t := table{Title: title, Head: []string{keyHead, "Jobs", "GPU-h", "IT energy", "Measured"}}
	for _, sg := range signals {
		t.Head = append(t.Head, "Emitted ("+sg+")", "Saved ("+sg+")")
	}
	t.Head = append(t.Head, "Cost")
	t.Right = []bool{false}
	for range t.Head[1:] {
		t.Right = append(t.Right, true)
	}
	for _, g := range groups {
		cells := []string{g.Key, fmt.Sprint(g.Jobs), sig(g.GPUHours.Value), fig(g.EnergyKWh), pct(g.MeasuredShare)}
		if g.Receipts == 0 {
			cells[2], cells[3], cells[4] = "–", "–", "–"
		}
		for _, sg := range signals {
			if e, ok := emissionsFor(g, sg); ok {
				cells = append(cells, fig(e.GCO2), fig(e.SavedGCO2))
			} else {
				cells = append(cells, "–", "–")
			}
		}
		if g.Receipts == 0 {
			cells = append(cells, "–")
		} else {
			cells = append(cells, fig(g.CostUSD))
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// maxJobRows bounds the job list in human formats; CSV and JSON have all.
const maxJobRows = 200

func jobsTable(r Report) table {
	t := table{Title: "Jobs", Head: []string{"ID", "Name", "State", "Region", "GPUs", "Start (UTC)", "Waited", "GPU-h", "IT energy", "Energy source", "g/kWh", "Signal", "Emitted", "Saved", "Util."},
		Right: []bool{false, false, false, false, true, false, true, true, true, false, true, false, true, true, true}}
	for i, l := range r.Jobs {
		if i == maxJobRows {
			t.Rows = append(t.Rows, []string{fmt.Sprintf("… %d more (see csv)", len(r.Jobs)-maxJobRows)})
			break
		}
		start, waited := "–", "–"
		if !l.Start.IsZero() {
			start = l.Start.Format("2006-01-02 15:04")
			waited = dur(l.DeferralS / 3600)
		}
		cells := []string{l.ID, l.Name, string(l.State), orDash(l.Region), fmt.Sprint(l.GPUs), start, waited}
		if !l.Receipt {
			cells = append(cells, "–", "–", "–", "–", "–", "–", "–", "–")
		} else {
			est := l.MeasuredKWh < l.EnergyKWh
			util := "–"
			if l.UtilisationPct != nil {
				util = sig(*l.UtilisationPct) + " %"
				if l.Idle {
					util += " IDLE"
				}
			}
			cells = append(cells, sig(l.GPUHours), approx(est, energy(l.EnergyKWh)), orDash(l.EnergySource),
				sig(l.IntensityGCO2PerKWh), l.Signal, approx(est, mass(l.GCO2)), approx(true, mass(l.SavedGCO2)), util)
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func idleTables(r Report) []table {
	u := r.Utilisation
	jobs := table{Title: fmt.Sprintf("Mostly idle jobs (mean GPU utilisation below %s %%)", sig(u.IdleBelowPct)),
		Head:  []string{"ID", "Name", "Tenant", "Region", "GPU model", "GPUs", "Util.", "GPU-h", "Idle GPU-h", "Idle energy"},
		Right: []bool{false, false, false, false, false, true, true, true, true, true}}
	for _, l := range r.Jobs {
		if !l.Idle {
			continue
		}
		jobs.Rows = append(jobs.Rows, []string{l.ID, l.Name, orDash(l.Tenant), orDash(l.Region), orDash(l.GPUModel), fmt.Sprint(l.GPUs),
			sig(*l.UtilisationPct) + " %", sig(l.GPUHours), sig(l.IdleGPUHours), approx(true, energy(l.IdleKWh))})
	}
	pools := table{Title: "Idle GPU-hours by pool", Head: []string{"Region", "Sampled jobs", "Idle jobs", "GPU-h", "Mean util.", "Idle GPU-h", "Idle energy (upper bound)", "Flag"},
		Right: []bool{false, true, true, true, true, true, true, false}}
	for _, p := range u.Pools {
		flag := ""
		if p.Idle {
			flag = "IDLE"
		}
		pools.Rows = append(pools.Rows, []string{p.Region, fmt.Sprint(p.SampledJobs), fmt.Sprint(p.IdleJobs), sig(p.GPUHours),
			sig(p.MeanUtilisationPct) + " %", sig(p.IdleGPUHours), approx(true, energy(p.IdleKWh)), flag})
	}
	return []table{jobs, pools}
}

// breakdowns lists the non-empty breakdown tables.
func breakdowns(r Report) []table {
	sg := signalsOf(r)
	var out []table
	for _, b := range []struct {
		title, head string
		groups      []Summary
	}{
		{"By region", "Region", r.ByRegion},
		{"By tenant", "Tenant", r.ByTenant},
		{"By tag", "Tag", r.ByTag},
		{"By GPU model", "GPU model", r.ByGPUModel},
		{"By month", "Month (UTC)", r.ByMonth},
	} {
		if len(b.groups) > 0 {
			out = append(out, breakdownTable(b.title, b.head, b.groups, sg))
		}
	}
	return out
}

// selectionText describes the options and the period covered.
func selectionText(r Report) string {
	o := r.Options
	var parts []string
	for _, k := range sortedKeys(o.Tags) {
		parts = append(parts, "tag "+k+"="+o.Tags[k])
	}
	if o.Tenant != "" {
		parts = append(parts, "tenant "+o.Tenant)
	}
	if o.Region != "" {
		parts = append(parts, "region "+o.Region)
	}
	if o.Group != "" {
		parts = append(parts, "group "+o.Group)
	}
	if !o.From.IsZero() {
		parts = append(parts, "from "+o.From.UTC().Format(time.RFC3339))
	}
	if !o.To.IsZero() {
		parts = append(parts, "to "+o.To.UTC().Format(time.RFC3339))
	}
	sel := "all jobs"
	if len(parts) > 0 {
		sel = strings.Join(parts, ", ")
	}
	if r.Start.IsZero() {
		return "Selection: " + sel + ". No job ran."
	}
	return fmt.Sprintf("Selection: %s. Runs from %s to %s (UTC).", sel, r.Start.Format("2006-01-02 15:04"), r.End.Format("2006-01-02 15:04"))
}

// sortedTags renders tags as k=v;k=v in key order.
func sortedTags(tags map[string]string) string {
	keys := sortedKeys(tags)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ";")
}
