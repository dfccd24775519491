package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// renderText writes the table format: sections of aligned columns.
func renderText(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	heading := func(s string) {
		fmt.Fprintf(bw, "\n%s\n%s\n", s, strings.Repeat("=", len([]rune(s))))
	}
	fmt.Fprintln(bw, "greenq carbon report")
	fmt.Fprintln(bw, selectionText(r))

	heading("Totals")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	for _, x := range reportRows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Label, x.Value, x.How)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range breakdowns(r) {
		heading(t.Title)
		if err := textTable(bw, t); err != nil {
			return err
		}
	}
	heading("Utilisation")
	u := r.Utilisation
	fmt.Fprintf(bw, "%d jobs with sampled GPU utilisation, %d without; %d flagged idle.\n", u.SampledJobs, u.UnsampledJobs, len(u.IdleJobs))
	for _, t := range idleTables(r) {
		if len(t.Rows) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s\n", t.Title)
		if err := textTable(bw, t); err != nil {
			return err
		}
	}
	heading("Jobs")
	if err := textTable(bw, jobsTable(r)); err != nil {
		return err
	}
	heading("How these figures were obtained")
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "- %s\n", n)
	}
	return bw.Flush()
}

func textTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.Head, "\t"))
	for _, cells := range t.Rows {
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// renderMarkdown writes the same sections as renderText in Markdown.
func renderMarkdown(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# greenq carbon report\n\n%s\n\n## Totals\n\n", mdEscape(selectionText(r)))
	fmt.Fprintln(bw, "| Figure | Value | How obtained |")
	fmt.Fprintln(bw, "|---|--:|---|")
	for _, x := range reportRows(r) {
		fmt.Fprintf(bw, "| %s | %s | %s |\n", mdEscape(strings.TrimSpace(x.Label)), mdEscape(x.Value), mdEscape(x.How))
	}
	for _, t := range breakdowns(r) {
		fmt.Fprintf(bw, "\n## %s\n\n", t.Title)
		mdTable(bw, t)
	}
	u := r.Utilisation
	fmt.Fprintf(bw, "\n## Utilisation\n\n%d jobs with sampled GPU utilisation, %d without; %d flagged idle.\n", u.SampledJobs, u.UnsampledJobs, len(u.IdleJobs))
	for _, t := range idleTables(r) {
		if len(t.Rows) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n### %s\n\n", t.Title)
		mdTable(bw, t)
	}
	fmt.Fprint(bw, "\n## Jobs\n\n")
	mdTable(bw, jobsTable(r))
	fmt.Fprint(bw, "\n## How these figures were obtained\n\n")
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "- %s\n", mdEscape(n))
	}
	return bw.Flush()
}

func mdTable(w io.Writer, t table) {
	fmt.Fprintf(w, "| %s |\n|", strings.Join(escapeAll(t.Head), " | "))
	for i := range t.Head {
		if i < len(t.Right) && t.Right[i] {
			fmt.Fprint(w, "--:|")
		} else {
			fmt.Fprint(w, "---|")
		}
	}
	fmt.Fprintln(w)
	for _, cells := range t.Rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(escapeAll(cells), " | "))
	}
}

func escapeAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = mdEscape(x)
	}
	return out
}

// mdEscape keeps user text (job names, tags) from breaking table cells.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "*", `\*`, "_", `\_`).Replace(s)
}
