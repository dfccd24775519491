package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api/report"
)

// MaxReportJobs bounds how many jobs one report reads.
const MaxReportJobs = 50000

// report serves GET /v1/report?format=…&tag=…&region=…&group=…&from=…&to=…
// (default format json) and GET /report (html), over the caller's jobs.
// With totals=true the csv format writes the totals (report.RenderTotals)
// instead of the job rows.
func (s *Server) report(defaultFormat string) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		q := r.URL.Query()
		if err := onlyParams(q, "format", "tag", "tenant", "region", "group", "from", "to", "idle_below", "totals"); err != nil {
			return err
		}
		format := q.Get("format")
		if format == "" {
			format = defaultFormat
		}
		q.Del("format")
		totals := false
		if v := q.Get("totals"); q.Has("totals") {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return greenq.Invalid("totals", "want true or false, got %q", v)
			}
			if b && format != "csv" {
				return greenq.Invalid("totals", "is for the csv format (the others show the totals already), got format %q", format)
			}
			totals = b
		}
		q.Del("totals")
		opts, err := report.ParseOptions(q)
		if err != nil {
			return err
		}
		if !p.admin {
			if opts.Tenant != "" && opts.Tenant != p.tenant {
				return greenq.Invalid("tenant", "only an admin token may report on other tenants")
			}
			opts.Tenant = p.tenant
		}
		list := listAll(p)
		list.Tenant, list.Region, list.Group, list.Tags = opts.Tenant, "", opts.Group, opts.Tags
		var jobs []*greenq.Job
		for {
			page, next, err := s.store.List(r.Context(), list)
			if err != nil {
				return fmt.Errorf("list jobs for report: %w", err)
			}
			jobs = append(jobs, page...)
			if next == "" || len(page) == 0 || len(jobs) >= MaxReportJobs {
				break
			}
			list.Cursor = next
		}
		var buf bytes.Buffer
		render := report.Render
		if totals {
			render = func(w io.Writer, r report.Report, _ string) error { return report.RenderTotals(w, r) }
		}
		if err := render(&buf, report.Build(jobs, opts), format); err != nil {
			return err
		}
		w.Header().Set("Content-Type", report.ContentType(format))
		_, _ = w.Write(buf.Bytes())
		return nil
	}
}
