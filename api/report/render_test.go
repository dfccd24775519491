package report

import (
	"bytes"
	"flag"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// quantity matches a rounded figure as the human formats print it.
var quantity = regexp.MustCompile(`(≈?)(-?[0-9]+(?:\.[0-9]+)?) (Wh|kWh|MWh|gCO2e|kgCO2e|tCO2e|GPU-h|GPU-hours)\b`)

// parseQuantity reads the first figure in s, in kWh, gCO2e or GPU-h.
func parseQuantity(s string) (v float64, approx bool, ok bool) {
	m := quantity.FindStringSubmatch(s)
	if m == nil {
		return 0, false, false
	}
	v, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return 0, false, false
	}
	scale := map[string]float64{"Wh": 1e-3, "kWh": 1, "MWh": 1e3, "gCO2e": 1, "kgCO2e": 1e3, "tCO2e": 1e6, "GPU-h": 1, "GPU-hours": 1}[m[3]]
	return v * scale, m[1] != "", true
}

// requireRounded requires got to be want rounded to three significant
// figures: within half a unit of the third digit.
func requireRounded(t *testing.T, name string, want, got float64) {
	t.Helper()
	if want == 0 {
		require.Zero(t, got, name)
		return
	}
	half := 0.5 * math.Pow(10, math.Floor(math.Log10(math.Abs(want)))-2)
	require.InDelta(t, want, got, half*1.0001, "%s: shown %v for %v", name, got, want)
}

// labelled finds the line that starts (after table punctuation) with
// label and reads the figure after it.
func labelled(t *testing.T, text, label string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimLeft(line, "| ")
		if !strings.HasPrefix(l, label) {
			continue
		}
		if v, approx, ok := parseQuantity(l[len(label):]); ok {
			return v, approx
		}
	}
	t.Fatalf("no figure labelled %q in:\n%s", label, text)
	return 0, false
}

// humanChecks are the totals every human format must show, with labels
// per format: table and markdown share the totals rows, statement has its
// own.
type humanCheck struct {
	table, statement string
	want             func(expected) float64
	approx           bool
}

var humanChecks = []humanCheck{
	{"GPU-hours", "Compute", func(e expected) float64 { return e.gpuHours }, false},
	{"IT energy", "Energy (IT)", func(e expected) float64 { return e.kwh }, true},
	{"Facility energy", "Energy (facility)", func(e expected) float64 { return e.facility }, true},
	{"Emissions, location-based (average)", "Emissions (average, location-based)", func(e expected) float64 { return e.gco2["average"] }, true},
	{"Emissions, location-based (marginal)", "Emissions (marginal, location-based)", func(e expected) float64 { return e.gco2["marginal"] }, true},
	{"Run-now counterfactual (average)", "Run-now counterfactual (average)", func(e expected) float64 { return e.baseline["average"] }, true},
	{"Saved (average)", "Reduction (average)", func(e expected) float64 { return e.saved["average"] }, true},
	{"Saved (marginal)", "Reduction (marginal)", func(e expected) float64 { return e.saved["marginal"] }, true},
	{"Embodied emissions", "Embodied emissions", func(e expected) float64 { return e.embodied }, true},
}

func TestHumanFormatsShowTheTotals(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	want := independent(jobs)
	r := Build(jobs, Options{})
	for _, format := range []string{"table", "markdown", "statement"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			require.NoError(t, Render(&buf, r, format))
			text := buf.String()
			for _, c := range humanChecks {
				label := c.table
				if format == "statement" {
					label = c.statement
				}
				got, approx := labelled(t, text, label)
				requireRounded(t, format+" "+label, c.want(want), got)
				require.Equal(t, c.approx, approx, "%s %s: estimates are marked ≈", format, label)
			}
			if format == "statement" {
				require.Regexp(t, `deferring saved 7 %,\s+moving saved 71 %`, text)
				require.NotContains(t, text, "(none)")
				return
			}
			// The split of the saving, measured cost, and the job not
			// finished apart with its planned cost.
			for label, w := range map[string]float64{"by waiting (average)": want.waiting["average"], "by moving (average)": want.moving["average"]} {
				got, _ := labelled(t, text, label)
				requireRounded(t, format+" "+label, w, got)
			}
			require.Regexp(t, `Not finished yet \(not above\)\s*\|?\s*1 \(running 1\)`, text)
			require.Contains(t, text, "$224")
		})
	}
	t.Run("html", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		require.NoError(t, Render(&buf, r, "html"))
		checkHTML(t, buf.String(), r, want)
	})
}

// htmlCell matches a totals cell: its key, exact value and rounded text.
var htmlCell = regexp.MustCompile(`<td[^>]*\bdata-key="([^"]+)"[^>]*\bdata-value="([^"]+)"[^>]*>([^<]*)</td>`)

// checkHTML asserts that a page (as written, or as a browser's DOM) has
// its plots and that its figures match the report and the receipts.
func checkHTML(t *testing.T, page string, r Report, want expected) {
	t.Helper()
	cells := map[string][2]string{}
	for _, m := range htmlCell.FindAllStringSubmatch(page, -1) {
		cells[m[1]] = [2]string{m[2], m[3]}
	}
	exact := map[string]float64{
		"gpu_hours":     r.Totals.GPUHours.Value,
		"energy_kwh":    r.Totals.EnergyKWh.Value,
		"facility_kwh":  r.Totals.FacilityKWh.Value,
		"embodied_gco2": r.Totals.EmbodiedGCO2.Value,
		"cost_usd":      r.Totals.CostUSD.Value,
		"jobs":          float64(r.Totals.Jobs),
	}
	for _, e := range r.Totals.Emissions {
		exact["gco2."+e.Signal] = e.GCO2.Value
		exact["baseline_gco2."+e.Signal] = e.BaselineGCO2.Value
		exact["saved_gco2."+e.Signal] = e.SavedGCO2.Value
	}
	for key, v := range exact {
		c, ok := cells[key]
		require.True(t, ok, "page has no cell %q", key)
		got, err := strconv.ParseFloat(c[0], 64)
		require.NoError(t, err)
		require.Equal(t, v, got, "data-value of %s equals the JSON", key)
	}
	textChecks := map[string]float64{
		"gpu_hours": want.gpuHours, "energy_kwh": want.kwh, "facility_kwh": want.facility, "embodied_gco2": want.embodied,
		"gco2.average": want.gco2["average"], "gco2.marginal": want.gco2["marginal"],
		"saved_gco2.average": want.saved["average"], "baseline_gco2.marginal": want.baseline["marginal"],
		"saved_by_waiting_gco2.average": want.waiting["average"], "saved_by_moving_gco2.average": want.moving["average"],
	}
	for key, w := range textChecks {
		got, _, ok := parseQuantity(htmlUnescape(cells[key][1]))
		require.True(t, ok, "cell %s text %q", key, cells[key][1])
		requireRounded(t, "html "+key, w, got)
	}
	plots := regexp.MustCompile(`<svg[^>]*\bdata-plot="([a-z-]+)"`).FindAllStringSubmatch(page, -1)
	var kinds []string
	for _, p := range plots {
		kinds = append(kinds, p[1])
	}
	require.Equal(t, []string{"emissions-over-time", "saved-vs-emitted", "emissions-over-time", "saved-vs-emitted", "energy-by-job"}, kinds)
	// The energy-by-job bars are labelled with the jobs' names, trials of a
	// sweep told apart, and carry each job's exact energy.
	require.Contains(t, page, ">bert-large</text>")
	require.Regexp(t, `>bert-sweep …[0-9a-z]{3}</text>`, page)
	bars := regexp.MustCompile(`data-job="([^"]+)" data-kwh="([^"]+)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, bars, r.Totals.Receipts)
	for _, b := range bars {
		for _, l := range r.Jobs {
			if l.ID == b[1] {
				require.Equal(t, num(l.EnergyKWh), b[2], b[1])
			}
		}
	}
	require.NotContains(t, page, "<script", "the page needs no JavaScript")
	require.Contains(t, page, "@media print")
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func TestHTMLEscapesJobText(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	jobs[0].Name = `<script>alert("x")</script>`
	jobs[0].Tags = map[string]string{"paper": `"><img src=x>`}
	r := Build(jobs, Options{})
	for _, f := range []string{"html"} {
		var buf bytes.Buffer
		require.NoError(t, Render(&buf, r, f))
		require.NotContains(t, buf.String(), "<script")
		require.NotContains(t, buf.String(), "<img")
	}
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, r, "markdown"))
	require.NotContains(t, buf.String(), `| "><img`)
}

func TestStatementGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"statement.golden", Options{Tags: map[string]string{"paper": "neurips-x"}}},
		{"statement-all.golden", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			require.NoError(t, Render(&buf, Build(loadJobs(t), tc.o), "statement"))
			path := "testdata/" + tc.name
			if *update {
				require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -update to create it")
			require.Equal(t, string(want), buf.String())
		})
	}
}
