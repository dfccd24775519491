package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
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
			now := time.Now()
			if explain != "" {
				var ex api.Explanation
				if err := jsonUnmarshal(raw, &ex); err != nil {
					return err
				}
				printExplain(g.stdout, ex, now)
				return nil
			}
			var plan api.PlanResponse
			if err := jsonUnmarshal(raw, &plan); err != nil {
				return err
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
					base = fmt.Sprintf("%.3g", e.Baseline.ExpectedGCO2)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.3g\t%s\t$%.2f\t%s\n", e.ID, e.Name, e.State, e.Region,
					e.Start.Local().Format("01-02 15:04"), durationUntil(now, *e.Start), e.ExpectedGCO2, base, e.ExpectedCostUSD, e.Reason)
			}
			t := plan.Totals
			fmt.Fprintf(tw, "\n%d jobs, %d deferred: %.3g gCO2e expected against %.3g running at once (%.3g saved)\n", t.Jobs, t.Deferred, t.ExpectedGCO2, t.BaselineGCO2, t.SavedGCO2)
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
		fmt.Fprintf(g.stdout, "\nnext 48 h, one character per hour from %s (^ planned starts):\n", now.Local().Format("15:04"))
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
	return t.Sub(now).Round(time.Minute).String()
}

func printExplain(w io.Writer, ex api.Explanation, now time.Time) {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3g\t$%.2f\t%s\n", mark, o.Region, o.Start.Local().Format("01-02 15:04"),
			durationUntil(now, o.Start), o.ExpectedGCO2, o.ExpectedCostUSD, verdict)
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
		Use:     "forecast --region R",
		Short:   "Show the normalised carbon series the planner uses for a region",
		Example: "  greenq forecast --region uk-south --hours 48\n  greenq forecast --region uk-south -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if region == "" {
				return greenq.Invalid("region", "is required")
			}
			if hours < 1 || hours > 24*90 {
				return greenq.Invalid("hours", "must be between 1 and 2160")
			}
			path := fmt.Sprintf("/v1/forecasts/%s?hours=%d", url.PathEscape(region), hours)
			var s forecast.Series
			raw, err := g.client().raw(cmd.Context(), "GET", path, nil)
			if err != nil {
				return err
			}
			if g.output == "json" {
				_, err := g.stdout.Write(raw)
				return err
			}
			if err := jsonUnmarshal(raw, &s); err != nil {
				return err
			}
			printSeries(g.stdout, s)
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "region name (required)")
	cmd.Flags().IntVar(&hours, "hours", 48, "hours ahead to show")
	outputFlag(cmd, g)
	return cmd
}

func printSeries(w io.Writer, s forecast.Series) {
	fmt.Fprintf(w, "%s (zone %s) — %s signal from %s, issued %s\n", s.Region, s.Zone, s.Signal, s.Source, s.IssuedAt.Local().Format(time.RFC3339))
	if len(s.Points) == 0 {
		fmt.Fprintln(w, "no points")
		return
	}
	vals := make([]float64, len(s.Points))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, p := range s.Points {
		vals[i] = p.GCO2PerKWh
		lo, hi = math.Min(lo, p.GCO2PerKWh), math.Max(hi, p.GCO2PerKWh)
	}
	fmt.Fprintf(w, "%s → %s\n", s.Points[0].Start.Local().Format("Mon 15:04"), s.End().Local().Format("Mon 15:04"))
	fmt.Fprintf(w, "%s\n", sparkline(vals, 96))
	fmt.Fprintf(w, "min %.0f  max %.0f gCO2e/kWh\n\n", lo, hi)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tgCO2e/kWh\tKIND")
	step := max(1, len(s.Points)/24)
	for i := 0; i < len(s.Points); i += step {
		p := s.Points[i]
		fmt.Fprintf(tw, "%s\t%.1f\t%s\n", p.Start.Local().Format("01-02 15:04"), p.GCO2PerKWh, p.Kind)
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
			fmt.Fprintln(tw, "REGION\tZONE\tPROVIDER\tPUE\tUSD/GPU-h\tGPUs\tWORKERS")
			for _, r := range regions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f\t%d\t%d\n", r.Name, r.Zone, r.Provider, r.PUE, r.GPUPriceUSDPerHour, r.Capacity, r.Workers)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, g)
	return cmd
}

func newReport(g *globals) *cobra.Command {
	var (
		format, tenant, region, from, to, group string
		tags                                    []string
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Carbon report over finished jobs: table, json, csv, markdown, html or a paper statement",
		Example: `  greenq report --tag paper=neurips-x --format statement
  greenq report --tenant vision --from 2026-11-01T00:00:00Z --format markdown
  greenq report --format html > report.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"format": format, "tenant": tenant, "region": region, "from": from, "to": to, "group": group} {
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
	f.StringVar(&format, "format", "table", "table, json, csv, markdown, html or statement")
	f.StringArrayVar(&tags, "tag", nil, "select jobs with this key=value tag (repeatable)")
	f.StringVar(&tenant, "tenant", "", "select one tenant's jobs (admin tokens)")
	f.StringVar(&region, "region", "", "select one region")
	f.StringVar(&group, "group", "", "select one sweep group")
	f.StringVar(&from, "from", "", "jobs submitted at or after this RFC 3339 time")
	f.StringVar(&to, "to", "", "jobs submitted before this RFC 3339 time")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
