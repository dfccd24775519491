package report

import (
	"bufio"
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// esc escapes text for HTML content and attribute values.
func esc(s string) string { return template.HTMLEscapeString(s) }

// pageCSS is inline so that the page is one file; the print rules keep
// figures and tables whole and drop screen colours when printed to PDF.
const pageCSS = `
:root{--ink:#1d2327;--muted:#5f6b73;--rule:#d5dbe0;--bg:#fff;--band:#f4f7f5}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg);margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--rule);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
p.sel{color:var(--muted);margin:0 0 12px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--rule);padding:3px 6px;text-align:left;vertical-align:top}
div.scroll{overflow-x:auto}
div.scroll table{font-size:12.5px}
div.scroll td:first-child{white-space:nowrap}
th{background:var(--band);font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
td.how{color:var(--muted);font-size:12px}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--rule);border-radius:6px;padding:8px;break-inside:avoid;page-break-inside:avoid}
figcaption{color:var(--muted);font-size:12px;margin-top:4px}
svg.plot{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#333}
.idle{color:#a4262c;font-weight:600}
ul.notes{color:var(--muted);font-size:12px;padding-left:18px}
@media print{
 @page{size:A4;margin:14mm}
 body{max-width:none;padding:0;font-size:10pt}
 .plots{display:block}
 figure{margin:0 0 10px}
 table,tr,figure,section.totals{break-inside:avoid;page-break-inside:avoid}
 h2{break-after:avoid;page-break-after:avoid}
 th{background:none}
 svg.plot{max-width:17cm;margin:0 auto}
 div.scroll{overflow:visible}
 div.scroll table{font-size:7.5pt}
}`

// renderHTML writes one self-contained page: no scripts, no external
// resources. Every total carries data-key and data-value (the exact JSON
// value) beside the rounded text, so tools and tests can read it back.
func renderHTML(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n")
	p("<title>greenq carbon report</title>\n<style>%s\n</style></head>\n<body>\n", pageCSS)
	p("<header><h1>greenq carbon report</h1><p class=\"sel\">%s</p></header>\n", esc(selectionText(r)))

	p("<section class=\"totals\" id=\"totals\"><h2>Totals</h2>\n<table><thead><tr><th>Figure</th><th class=\"num\">Value</th><th>How obtained</th></tr></thead><tbody>\n")
	for _, x := range reportRows(r) {
		attr := ""
		if x.Raw != 0 || isNumericKey(x.Key) {
			attr = fmt.Sprintf(" data-value=\"%s\"", num(x.Raw))
		}
		p("<tr><td>%s</td><td class=\"num\" data-key=\"%s\"%s>%s</td><td class=\"how\">%s</td></tr>\n",
			esc(strings.TrimSpace(x.Label)), esc(x.Key), attr, esc(x.Value), esc(x.How))
	}
	p("</tbody></table></section>\n")

	p("<section id=\"plots\"><h2>Plots</h2><div class=\"plots\">\n")
	for _, sg := range signalsOf(r) {
		figure(bw, "Cumulative location-based emissions over time by region ("+sg+" intensity).", emissionsOverTime(r, sg))
		figure(bw, "Emitted vs the run-now counterfactual by region ("+sg+" intensity); the gap is what deferral saved.", savedVsEmitted(r, sg))
	}
	figure(bw, "IT energy by job (GPU, CPU, RAM); hatched bars are estimated.", energyByJob(r))
	p("</div></section>\n")

	for _, t := range breakdowns(r) {
		p("<section><h2>%s</h2>\n", esc(t.Title))
		htmlTable(bw, t)
		p("</section>\n")
	}
	u := r.Utilisation
	p("<section id=\"utilisation\"><h2>Utilisation</h2><p>%d jobs with sampled GPU utilisation, %d without; <span class=\"idle\" data-key=\"idle_jobs\" data-value=\"%d\">%d flagged idle</span>.</p>\n",
		u.SampledJobs, u.UnsampledJobs, len(u.IdleJobs), len(u.IdleJobs))
	for _, t := range idleTables(r) {
		if len(t.Rows) == 0 {
			continue
		}
		p("<h3>%s</h3>\n", esc(t.Title))
		htmlTable(bw, t)
	}
	p("</section>\n<section id=\"jobs\"><h2>Jobs</h2>\n")
	htmlTable(bw, jobsTable(r))
	p("</section>\n<section id=\"notes\"><h2>How these figures were obtained</h2><ul class=\"notes\">\n")
	for _, n := range r.Notes {
		p("<li>%s</li>\n", esc(n))
	}
	p("</ul></section>\n</body></html>\n")
	return bw.Flush()
}

// isNumericKey says whether a totals row is a number even when zero.
func isNumericKey(k string) bool {
	return k != "gpu_models" && k != "regions" && k != "intensity_sources"
}

func figure(w io.Writer, caption, svg string) {
	fmt.Fprintf(w, "<figure>%s<figcaption>%s</figcaption></figure>\n", svg, esc(caption))
}

func htmlTable(w io.Writer, t table) {
	fmt.Fprint(w, "<div class=\"scroll\"><table><thead><tr>")
	for i, h := range t.Head {
		fmt.Fprintf(w, "<th%s>%s</th>", numClass(t, i), esc(h))
	}
	fmt.Fprint(w, "</tr></thead><tbody>\n")
	for _, cells := range t.Rows {
		fmt.Fprint(w, "<tr>")
		for i, c := range cells {
			cls := numClass(t, i)
			if strings.Contains(c, "IDLE") {
				cls = ` class="num idle"`
			}
			fmt.Fprintf(w, "<td%s>%s</td>", cls, esc(c))
		}
		fmt.Fprint(w, "</tr>\n")
	}
	fmt.Fprint(w, "</tbody></table></div>\n")
}

func numClass(t table, i int) string {
	if i < len(t.Right) && t.Right[i] {
		return ` class="num"`
	}
	return ""
}

// Plot geometry, in SVG user units.
const (
	plotW, plotH                       = 560, 300
	padL, padR, padT, padB             = 64, 40, 28, 40
	innerW, innerH                     = plotW - padL - padR, plotH - padT - padB
	colourEmitted, colourBaseline      = "#d95f02", "#9aa5ad"
	colourGPU, colourCPU, colourMemory = "#1b9e77", "#7570b3", "#e6ab02"
)

var palette = []string{"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"}

func svgOpen(b *strings.Builder, kind, title string, height int) {
	fmt.Fprintf(b, `<svg class="plot" data-plot="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img"><title>%s</title>`,
		kind, plotW, height, plotW, height, esc(title))
	fmt.Fprintf(b, `<text x="%d" y="16" style="font-weight:600">%s</text>`, padL, esc(title))
}

// niceStep returns a 1, 2 or 5 × 10^k step giving about n ticks up to max.
func niceStep(maxV float64, n int) float64 {
	if maxV <= 0 {
		return 1
	}
	raw := maxV / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// yAxis draws horizontal grid lines and labels from 0 to top.
func yAxis(b *strings.Builder, top float64, label func(float64) string) {
	step := niceStep(top, 4)
	for v := 0.0; v <= top*1.0001; v += step {
		y := padT + innerH - v/top*innerH
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e7ea"/>`, padL, padL+innerW, y, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, esc(label(v)))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, padL, padL+innerW, padT+innerH, padT+innerH)
}

// axisLabel returns a tick formatter for values in base units (g or kWh)
// that picks one scaled unit for the whole axis, so ticks read 0, 2, 4 kg.
func axisLabel(top float64, units []string) func(float64) string {
	scale, unit := 1.0, units[0]
	for i := 1; i < len(units) && top >= 1000*scale; i++ {
		scale, unit = scale*1000, units[i]
	}
	return func(v float64) string {
		return strconv.FormatFloat(v/scale, 'g', 4, 64) + " " + unit
	}
}

var (
	massUnits   = []string{"g", "kg", "t"}
	energyUnits = []string{"kWh", "MWh", "GWh"}
)

// axisTop rounds a maximum up to a whole number of steps.
func axisTop(maxV float64) float64 {
	if maxV <= 0 {
		return 1
	}
	step := niceStep(maxV, 4)
	return math.Ceil(maxV/step) * step
}

func legend(b *strings.Builder, x, y int, names, colours []string) {
	for i, n := range names {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, x, y+i*14, colours[i], x+14, y+i*14+9, esc(n))
	}
}

// emissionsOverTime plots cumulative emissions per region against time,
// a step each time a job finishes.
func emissionsOverTime(r Report, signal string) string {
	type pt struct {
		t time.Time
		g float64
	}
	series := map[string][]pt{}
	var t0, t1 time.Time
	for _, l := range r.Jobs {
		if !l.Receipt || l.Signal != signal {
			continue
		}
		end := l.End
		if end.IsZero() {
			end = l.Start
		}
		if t0.IsZero() || l.Start.Before(t0) {
			t0 = l.Start
		}
		if end.After(t1) {
			t1 = end
		}
		series[l.Region] = append(series[l.Region], pt{end, l.GCO2})
	}
	var b strings.Builder
	svgOpen(&b, "emissions-over-time", "Emissions over time by region ("+signal+")", plotH)
	if t1.Sub(t0) < time.Hour {
		t1 = t0.Add(time.Hour)
	}
	regions := sortedKeys(series)
	var top float64
	for _, reg := range regions {
		pts := series[reg]
		slices.SortFunc(pts, func(a, b pt) int { return a.t.Compare(b.t) })
		var sum float64
		for i := range pts {
			sum += pts[i].g
			pts[i].g = sum
		}
		top = max(top, sum)
	}
	top = axisTop(top)
	yAxis(&b, top, axisLabel(top, massUnits))
	x := func(t time.Time) float64 {
		return padL + float64(t.Sub(t0))/float64(t1.Sub(t0))*innerW
	}
	y := func(g float64) float64 { return padT + innerH - g/top*innerH }
	layout := "2006-01-02"
	if t1.Sub(t0) < 4*24*time.Hour {
		layout = "01-02 15:04"
	}
	for i := 0; i <= 4; i++ {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / 4))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(t), padT+innerH+16, t.Format(layout))
	}
	var colours []string
	for i, reg := range regions {
		c := palette[i%len(palette)]
		colours = append(colours, c)
		pts := series[reg]
		var path strings.Builder
		fmt.Fprintf(&path, "M%.1f %.1f", x(t0), y(0))
		prev := 0.0
		for _, p := range pts {
			fmt.Fprintf(&path, " L%.1f %.1f L%.1f %.1f", x(p.t), y(prev), x(p.t), y(p.g))
			prev = p.g
		}
		fmt.Fprintf(&path, " L%.1f %.1f", x(t1), y(prev))
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" data-region="%s" data-gco2="%s"/>`, path.String(), c, esc(reg), num(prev))
	}
	legend(&b, padL+innerW-90, padT+4, regions, colours)
	b.WriteString("</svg>")
	return b.String()
}

// savedVsEmitted draws, per region, the emitted and counterfactual bars.
func savedVsEmitted(r Report, signal string) string {
	type bar struct {
		region            string
		emitted, baseline float64
	}
	var bars []bar
	var top float64
	for _, g := range r.ByRegion {
		if e, ok := emissionsFor(g, signal); ok {
			bars = append(bars, bar{g.Key, e.GCO2.Value, e.BaselineGCO2.Value})
			top = max(top, e.GCO2.Value, e.BaselineGCO2.Value)
		}
	}
	var b strings.Builder
	svgOpen(&b, "saved-vs-emitted", "Emitted vs run-now counterfactual ("+signal+")", plotH)
	top = axisTop(top)
	yAxis(&b, top, axisLabel(top, massUnits))
	if len(bars) > 0 {
		slot := float64(innerW) / float64(len(bars))
		bw := min(slot*0.35, 60)
		for i, br := range bars {
			cx := padL + slot*(float64(i)+0.5)
			for j, v := range []float64{br.emitted, br.baseline} {
				c, kind := colourEmitted, "emitted"
				if j == 1 {
					c, kind = colourBaseline, "baseline"
				}
				h := v / top * innerH
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-region="%s" data-kind="%s" data-gco2="%s"/>`,
					cx-bw+float64(j)*bw, padT+innerH-h, bw-2, h, c, esc(br.region), kind, num(v))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, cx, padT+innerH+16, esc(br.region))
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">saved ≈%s</text>`, cx, padT+innerH+30, esc(mass(br.baseline-br.emitted)))
		}
	}
	legend(&b, padL+innerW-150, padT+4, []string{"emitted", "run-now counterfactual"}, []string{colourEmitted, colourBaseline})
	b.WriteString("</svg>")
	return b.String()
}

// maxPlotJobs bounds the energy-by-job plot to its largest jobs.
const maxPlotJobs = 30

// energyByJob draws horizontal stacked bars, largest job first.
func energyByJob(r Report) string {
	var lines []JobLine
	for _, l := range r.Jobs {
		if l.Receipt {
			lines = append(lines, l)
		}
	}
	slices.SortStableFunc(lines, func(a, b JobLine) int {
		if c := cmp.Compare(b.EnergyKWh, a.EnergyKWh); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	title := "IT energy by job"
	if len(lines) > maxPlotJobs {
		title = fmt.Sprintf("IT energy by job (largest %d of %d)", maxPlotJobs, len(lines))
		lines = lines[:maxPlotJobs]
	}
	const rowH = 18
	height := padT + 20 + len(lines)*rowH + 40
	var b strings.Builder
	svgOpen(&b, "energy-by-job", title, height)
	b.WriteString(`<defs><pattern id="est" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff" fill-opacity="0.0"/><line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>`)
	var top float64
	for _, l := range lines {
		top = max(top, l.GPUEnergyKWh+l.CPUEnergyKWh+l.RAMEnergyKWh)
	}
	top = axisTop(top)
	label := axisLabel(top, energyUnits)
	// Bars are labelled with the jobs' names, which need more room than
	// the other plots' axes.
	left := float64(barLabelW)
	width := float64(plotW-padR-30) - left
	names := barNames(lines)
	for i, l := range lines {
		y := float64(padT + 20 + i*rowH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end"><title>%s</title>%s</text>`, left-6, y+12, esc(l.Name+" "+l.ID), esc(names[i]))
		x := left
		for _, part := range []struct {
			v        float64
			colour   string
			measured bool
		}{
			{l.GPUEnergyKWh, colourGPU, measuredSource(l.EnergySource)},
			{l.CPUEnergyKWh, colourCPU, measuredSource(l.CPUEnergySource)},
			{l.RAMEnergyKWh, colourMemory, false},
		} {
			wd := part.v / top * width
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%d" fill="%s"/>`, x, y, wd, rowH-4, part.colour)
			if !part.measured && wd > 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%d" fill="url(#est)"/>`, x, y, wd, rowH-4)
			}
			x += wd
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" data-job="%s" data-kwh="%s">%s</text>`, x+4, y+12, esc(l.ID), num(l.EnergyKWh), esc(approx(l.MeasuredKWh < l.EnergyKWh, energy(l.EnergyKWh))))
	}
	axisY := padT + 20 + len(lines)*rowH + 14
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, left+v/top*width, axisY, esc(label(v)))
	}
	for i, n := range []string{"GPU", "CPU", "RAM", "estimated"} {
		c := []string{colourGPU, colourCPU, colourMemory, "#777"}[i]
		x := int(left) + i*80
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/>`, x, axisY+8, c)
		if i == 3 {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="url(#est)"/>`, x, axisY+8)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, x+14, axisY+17, n)
	}
	b.WriteString("</svg>")
	return b.String()
}

// barLabelW is the room the energy-by-job plot keeps for job names.
const barLabelW = 150

// barNames labels each bar with its job's name (its id when it has none),
// shortened to fit barLabelW, with the id's end where names repeat, so
// that trials of a sweep stay apart.
func barNames(lines []JobLine) []string {
	const maxRunes = 22
	count := map[string]int{}
	for _, l := range lines {
		count[l.Name]++
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		name := l.Name
		if name == "" {
			name = l.ID
		}
		suffix := ""
		if l.Name != "" && count[l.Name] > 1 {
			id := []rune(l.ID)
			suffix = " …" + string(id[max(0, len(id)-4):])
		}
		r := []rune(name)
		if room := maxRunes - len([]rune(suffix)); len(r) > room {
			r = append(r[:room-1], '…')
		}
		out[i] = string(r) + suffix
	}
	return out
}
