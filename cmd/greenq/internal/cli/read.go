package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api"
	"github.com/greenq/greenq/forecast"
)

func newPlan(g *globals) *cobra.Command {
	var explain string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show every pending job's region, window, expected gCO2e and cost",
		Example: `  greenq plan
  greenq plan --explain 01JD…
  greenq plan -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			path := "/v1/plan"
			if explain != "" {
				path += "?explain=" + url.QueryEscape(explain)
			}
			raw, err := g.client().raw(cmd.Context(), "GET", path, nil)
			if err != nil {
				return err
			}
			if g.output == "json" {
				_, err := g.stdout.Write(raw)
				return err
			}
			now := g.now()
			if explain != "" {
				var ex api.Explanation
				if err := jsonUnmarshal(raw, &ex); err != nil {
					return err
				}
				g.printExplain(g.stdout, ex, now)
				return nil
			}
			var plan api.PlanResponse
			if err := jsonUnmarshal(raw, &plan); err != nil {
				return err
			}
			if len(plan.Jobs) == 0 {
				fmt.Fprintln(g.stdout, "no job is waiting for its window (greenq list shows the others)")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tREGION\tSTART\tIN\tgCO2e\tNOW gCO2e\tCOST\tREASON")
			for _, e := range plan.Jobs {
				if e.Start == nil {
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\twaiting for a plan\n", e.ID, e.Name, e.State)
					continue
				}
				base := "-"
				if e.Baseline != nil {
					base = human(e.Baseline.ExpectedGCO2)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Name, e.State, e.Region,
					g.when(*e.Start), durationUntil(now, *e.Start), human(e.ExpectedGCO2), base, usd(e.ExpectedCostUSD), e.Reason)
			}
			t := plan.Totals
			fmt.Fprintf(tw, "\n%s, %d deferred: %s expected against %s running at once (%s saved)\n", plural(t.Jobs, "job"), t.Deferred,
				grams(t.ExpectedGCO2), human(t.BaselineGCO2), human(t.SavedGCO2))
			if err := tw.Flush(); err != nil {
				return err
			}
			if isTerminal(g.stdout) {
				g.planCharts(cmd.Context(), plan, now)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&explain, "explain", "", "show the alternatives weighed for one job and why the chosen one won")
	outputFlag(cmd, g)
	return cmd
}

// planCharts draws, per region with planned jobs, the next 48 hours of its
// forecast as a sparkline with a mark under each planned start.
func (g *globals) planCharts(ctx context.Context, plan api.PlanResponse, now time.Time) {
	starts := map[string][]time.Time{}
	var regions []string
	for _, e := range plan.Jobs {
		if e.Start == nil {
			continue
		}
		if _, ok := starts[e.Region]; !ok {
			regions = append(regions, e.Region)
		}
		starts[e.Region] = append(starts[e.Region], *e.Start)
	}
	sort.Strings(regions)
	if len(regions) > 0 {
		fmt.Fprintf(g.stdout, "\nnext 48 h, one character per hour from %s (^ planned starts):\n", now.In(g.loc).Format("15:04 MST"))
	}
	for _, r := range regions {
		var s forecast.Series
		if err := g.client().do(ctx, "GET", "/v1/forecasts/"+url.PathEscape(r)+"?hours=48", nil, &s); err != nil {
			continue
		}
		line := chartLine(s, starts[r], now, 48, time.Hour)
		fmt.Fprintf(g.stdout, "%-12s %s\n%-12s %s\n", r, line[0], "", line[1])
	}
}

// chartLine returns a sparkline of s over n steps from now and a second
// line with ^ under each step holding a start.
func chartLine(s forecast.Series, starts []time.Time, now time.Time, n int, step time.Duration) [2]string {
	vals := make([]float64, n)
	for i := range vals {
		vals[i], _ = s.Mean(now.Add(time.Duration(i)*step), now.Add(time.Duration(i+1)*step))
	}
	marks := []rune(strings.Repeat(" ", n))
	for _, t := range starts {
		if i := int(t.Sub(now) / step); i >= 0 && i < n {
			marks[i] = '^'
		}
	}
	return [2]string{sparkline(vals, n), strings.TrimRight(string(marks), " ")}
}

func durationUntil(now, t time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return humanDuration(t.Sub(now))
}

func (g *globals) printExplain(w io.Writer, ex api.Explanation, now time.Time) {
	j := ex.Job
	fmt.Fprintf(w, "%s %s: %s\n", j.ID, j.Name, ex.Why)
	if j.Reason != "" && j.Reason != ex.Why {
		fmt.Fprintf(w, "plan: %s\n", j.Reason)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tREGION\tSTART\tIN\tgCO2e\tCOST\tVERDICT")
	row := func(mark string, o api.Option) {
		verdict := o.Rejected
		if verdict == "" {
			verdict = "chosen"
		}
		if o.Start.IsZero() {
			// No window at all (over the price cap, no forecast): nothing to show but why.
			fmt.Fprintf(tw, "%s\t%s\t–\t–\t–\t–\t%s\n", mark, o.Region, verdict)
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, o.Region, g.when(o.Start),
			durationUntil(now, o.Start), human(o.ExpectedGCO2), usd(o.ExpectedCostUSD), verdict)
	}
	if ex.Chosen != nil {
		row("*", *ex.Chosen)
	}
	for _, o := range ex.Alternatives {
		if ex.Chosen != nil && o == *ex.Chosen {
			continue
		}
		row("", o)
	}
	tw.Flush()
}

func newForecast(g *globals) *cobra.Command {
	var region string
	var hours int
	cmd := &cobra.Command{
		Use:   "forecast --region R",
		Short: "Show the normalised carbon series the planner uses for a region",
		Long: `Show a region's carbon intensity for the next --hours: a sparkline, the
least and greatest value and when, and a table of every point (hourly for
most providers). Beyond 72 points the table shows blocks of several hours
(mean, min, max) and says so; -o json has every point. A series that ends
before the hours asked for says where it ends.`,
		Example: "  greenq forecast --region uk-south --hours 48\n  greenq forecast --region uk-south -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if region == "" {
				return greenq.Invalid("region", "is required (greenq regions lists them)")
			}
			if hours < 1 || hours > api.MaxForecastHours {
				return greenq.Invalid("hours", "must be between 1 and %d, got %d", api.MaxForecastHours, hours)
			}
			c := g.client()
			path := fmt.Sprintf("/v1/forecasts/%s?hours=%d", url.PathEscape(region), hours)
			raw, err := c.raw(cmd.Context(), "GET", path, nil)
			if ge := (*greenq.Error)(nil); errors.As(err, &ge) && ge.Code == greenq.CodeNotFound {
				return g.unknownRegion(cmd.Context(), c, region)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				_, err := g.stdout.Write(raw)
				return err
			}
			var s forecast.Series
			if err := jsonUnmarshal(raw, &s); err != nil {
				return err
			}
			g.printSeries(g.stdout, s, hours, g.now())
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "region name (required; greenq regions lists them)")
	cmd.Flags().IntVar(&hours, "hours", 48, "hours ahead to show")
	outputFlag(cmd, g)
	return cmd
}

// unknownRegion is the usage error for a region the server does not know,
// listing those it does.
func (g *globals) unknownRegion(ctx context.Context, c *client, region string) error {
	var list struct {
		Regions []greenq.Region `json:"regions"`
	}
	known := ""
	if c.do(ctx, "GET", "/v1/regions", nil, &list) == nil && len(list.Regions) > 0 {
		names := make([]string, len(list.Regions))
		for i, r := range list.Regions {
			names[i] = r.Name
		}
		sort.Strings(names)
		known = " (known: " + strings.Join(names, ", ") + ")"
	}
	return greenq.Invalid("region", "%q is not a region of this server%s", region, known)
}

// maxSeriesRows is the most points the forecast table shows one a row;
// beyond, it shows blocks of several points.
const maxSeriesRows = 72

func (g *globals) printSeries(w io.Writer, s forecast.Series, hours int, now time.Time) {
	fmt.Fprintf(w, "%s (zone %s): %s signal from %s, issued %s\n", s.Region, s.Zone, s.Signal, s.Source, g.when(s.IssuedAt))
	if len(s.Points) == 0 {
		fmt.Fprintln(w, "no points")
		return
	}
	pts := s.Points
	step := pts[0].End.Sub(pts[0].Start)
	every := "hourly"
	if step != time.Hour {
		every = "every " + humanDuration(step)
	}
	fmt.Fprintf(w, "%s → %s: %d points, %s\n", g.when(pts[0].Start), g.when(s.End()), len(pts), every)
	if asked := now.Add(time.Duration(hours) * time.Hour); s.End().Before(asked.Add(-time.Hour)) {
		known := max(0, int(s.End().Sub(now).Round(time.Hour)/time.Hour))
		fmt.Fprintf(w, "the series ends %s: %d of the %d hours asked for are known (the provider's forecast and greenq's estimate reach no further)\n",
			g.when(s.End()), known, hours)
	}
	vals := make([]float64, len(pts))
	lo, hi := 0, 0
	for i, p := range pts {
		vals[i] = p.GCO2PerKWh
		if p.GCO2PerKWh < pts[lo].GCO2PerKWh {
			lo = i
		}
		if p.GCO2PerKWh > pts[hi].GCO2PerKWh {
			hi = i
		}
	}
	fmt.Fprintf(w, "%s\n", sparkline(vals, 96))
	fmt.Fprintf(w, "min %s at %s, max %s at %s (gCO2e/kWh)\n\n", human(pts[lo].GCO2PerKWh), g.when(pts[lo].Start),
		human(pts[hi].GCO2PerKWh), g.when(pts[hi].Start))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(pts) <= maxSeriesRows {
		fmt.Fprintln(tw, "START\tgCO2e/kWh\tKIND")
		for _, p := range pts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", g.when(p.Start), human(p.GCO2PerKWh), p.Kind)
		}
		tw.Flush()
		return
	}
	k := (len(pts) + maxSeriesRows - 1) / maxSeriesRows
	if step > 0 && step <= time.Hour && k*int(step) < int(time.Hour) {
		k = int(time.Hour / step)
	}
	fmt.Fprintf(w, "%s blocks (mean, least and greatest of each; -o json has every point):\n", humanDuration(time.Duration(k)*step))
	fmt.Fprintln(tw, "START\tMEAN\tMIN\tMAX\tKIND")
	for i := 0; i < len(pts); i += k {
		block := pts[i:min(i+k, len(pts))]
		sum, bl, bh := 0.0, block[0].GCO2PerKWh, block[0].GCO2PerKWh
		kinds := []string{}
		for _, p := range block {
			sum += p.GCO2PerKWh
			bl, bh = math.Min(bl, p.GCO2PerKWh), math.Max(bh, p.GCO2PerKWh)
			if !slices.Contains(kinds, string(p.Kind)) {
				kinds = append(kinds, string(p.Kind))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.when(block[0].Start), human(sum/float64(len(block))), human(bl), human(bh), strings.Join(kinds, "+"))
	}
	tw.Flush()
}

// sparkline draws values as block characters, averaging down to width.
func sparkline(vals []float64, width int) string {
	if len(vals) == 0 {
		return ""
	}
	if len(vals) > width {
		out := make([]float64, width)
		for i := range out {
			a, b := i*len(vals)/width, (i+1)*len(vals)/width
			sum := 0.0
			for _, v := range vals[a:b] {
				sum += v
			}
			out[i] = sum / float64(b-a)
		}
		vals = out
	}
	blocks := []rune("▁▂▃▄▅▆▇█")
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(blocks)-1))
		}
		b.WriteRune(blocks[i])
	}
	return b.String()
}

func newRegions(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "regions",
		Short:   "List regions: grid zone, provider, PUE, price and live capacity",
		Example: "  greenq regions\n  greenq regions -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			raw, err := g.client().raw(cmd.Context(), "GET", "/v1/regions", nil)
			if err != nil {
				return err
			}
			if g.output == "json" {
				_, err := g.stdout.Write(raw)
				return err
			}
			var regions []greenq.Region
			if err := jsonUnmarshal(raw, &regions); err != nil {
				var wrapped struct {
					Regions []greenq.Region `json:"regions"`
				}
				if err := jsonUnmarshal(raw, &wrapped); err != nil {
					return err
				}
				regions = wrapped.Regions
			}
			sort.Slice(regions, func(i, j int) bool { return regions[i].Name < regions[j].Name })
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REGION\tZONE\tPROVIDER\tPUE\tPRICE/GPU-h\tGPUs\tWORKERS")
			for _, r := range regions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Name, r.Zone, r.Provider, human(r.PUE), usd(r.GPUPriceUSDPerHour), r.Capacity, r.Workers)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, g)
	return cmd
}

func newReport(g *globals) *cobra.Command {
	var (
		format, output, tenant, region, from, to, group string
		tags                                            []string
		totals                                          bool
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Carbon report over finished jobs: table, json, csv, markdown, html, a paper statement or CodeCarbon's emissions.csv",
		Example: `  greenq report --tag paper=neurips-x --format statement
  greenq report --tenant vision --from 2026-11-01T00:00:00Z -o markdown
  greenq report -o html > report.html
  greenq report -o csv > jobs.csv && greenq report -o csv --totals > totals.csv
  greenq report --format codecarbon > emissions.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flags(); f.Changed("output") {
				if f.Changed("format") && output != format {
					return usagef("-o %s and --format %s disagree; give one", output, format)
				}
				format = output
			}
			q := url.Values{}
			for k, v := range map[string]string{"format": format, "tenant": tenant, "region": region, "from": from, "to": to, "group": group, "totals": totalsParam(totals)} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for _, t := range tags {
				if !strings.Contains(t, "=") {
					return greenq.Invalid("tag", "%q is not key=value", t)
				}
				q.Add("tag", t)
			}
			raw, err := g.client().raw(cmd.Context(), "GET", "/v1/report?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(raw)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "table", "table, json, csv, markdown, html, statement or codecarbon (CodeCarbon's emissions.csv)")
	f.StringVarP(&output, "output", "o", "table", "the same as --format, as other commands take it")
	f.StringArrayVar(&tags, "tag", nil, "select jobs with this key=value tag (repeatable)")
	f.StringVar(&tenant, "tenant", "", "select one tenant's jobs (admin tokens)")
	f.StringVar(&region, "region", "", "select one region")
	f.StringVar(&group, "group", "", "select one sweep group")
	f.StringVar(&from, "from", "", "jobs submitted at or after this RFC 3339 time")
	f.StringVar(&to, "to", "", "jobs submitted before this RFC 3339 time")
	f.BoolVar(&totals, "totals", false, "with csv: the totals, a row per carbon signal (the job rows carry none)")
	return cmd
}

// totalsParam is the report's totals query value: "true", or "" to leave
// it out.
func totalsParam(totals bool) string {
	if totals {
		return "true"
	}
	return ""
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
