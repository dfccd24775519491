package report

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// DefaultIdleBelowPct is the mean GPU utilisation below which a job's GPUs
// count as mostly idle.
const DefaultIdleBelowPct = 20.0

// Options selects the jobs a report covers. The zero value selects every job.
type Options struct {
	// Tags must all be present on a job with these values.
	Tags map[string]string `json:"tags,omitempty"`
	// Tenant, when set, keeps only that tenant's jobs.
	Tenant string `json:"tenant,omitempty"`
	// Region, when set, keeps only jobs that ran (or are planned to run) there.
	Region string `json:"region,omitempty"`
	// From and To bound the job's time (first run start, else submit time)
	// to [From, To); a zero bound is open.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Group, when set, keeps only the trials of one sweep.
	Group string `json:"group,omitempty"`
	// IdleBelowPct is the mean GPU utilisation (percent) below which a job
	// is flagged as mostly idle. Default DefaultIdleBelowPct.
	IdleBelowPct float64 `json:"idle_below_pct,omitempty"`
}

// idleBelow returns the idle threshold with its default applied.
func (o Options) idleBelow() float64 {
	if o.IdleBelowPct > 0 {
		return o.IdleBelowPct
	}
	return DefaultIdleBelowPct
}

// ParseOptions reads report options from a query string:
//
//	tag=key=value (repeatable), tenant, region, group,
//	from, to (RFC 3339, or a date 2006-01-02 meaning its UTC midnight),
//	idle_below (percent, 0 < x ≤ 100).
//
// Other parameters (format, for one) are left to the caller. Errors are
// greenq invalid-argument errors naming the parameter.
func ParseOptions(q url.Values) (Options, error) {
	var o Options
	for _, kv := range q["tag"] {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return Options{}, greenq.Invalid("tag", "want key=value, got %q", kv)
		}
		if o.Tags == nil {
			o.Tags = map[string]string{}
		}
		if old, dup := o.Tags[k]; dup && old != v {
			return Options{}, greenq.Invalid("tag", "key %q given twice with different values", k)
		}
		o.Tags[k] = v
	}
	o.Tenant = q.Get("tenant")
	o.Region = q.Get("region")
	o.Group = q.Get("group")
	var err error
	if o.From, err = parseTime("from", q.Get("from")); err != nil {
		return Options{}, err
	}
	if o.To, err = parseTime("to", q.Get("to")); err != nil {
		return Options{}, err
	}
	if !o.From.IsZero() && !o.To.IsZero() && !o.To.After(o.From) {
		return Options{}, greenq.Invalid("to", "must be after from (%s)", o.From.Format(time.RFC3339))
	}
	if s := q.Get("idle_below"); s != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !(v > 0 && v <= 100) {
			return Options{}, greenq.Invalid("idle_below", "want a percentage in (0, 100], got %q", s)
		}
		o.IdleBelowPct = v
	}
	return o, nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, greenq.Invalid(field, "want an RFC 3339 time such as 2026-01-02T15:04:05Z or a date 2026-01-02, got %q", s)
}

// Select returns the jobs o selects, in their original order.
func Select(jobs []*greenq.Job, o Options) []*greenq.Job {
	var out []*greenq.Job
	for _, j := range jobs {
		if j != nil && o.match(j) {
			out = append(out, j)
		}
	}
	return out
}

func (o Options) match(j *greenq.Job) bool {
	for k, v := range o.Tags {
		if got, ok := j.Tags[k]; !ok || got != v {
			return false
		}
	}
	if o.Tenant != "" && j.Tenant != o.Tenant {
		return false
	}
	if o.Group != "" && j.Group != o.Group {
		return false
	}
	if o.Region != "" && jobRegion(j) != o.Region {
		return false
	}
	t := jobTime(j)
	if !o.From.IsZero() && t.Before(o.From) {
		return false
	}
	if !o.To.IsZero() && !t.Before(o.To) {
		return false
	}
	return true
}

// jobRegion is where a job ran, else where it is planned to run.
func jobRegion(j *greenq.Job) string {
	switch {
	case j.Run != nil && j.Run.Region != "":
		return j.Run.Region
	case len(j.Segments) > 0:
		return j.Segments[len(j.Segments)-1].Region
	case j.Plan != nil:
		return j.Plan.Region
	}
	return ""
}

// jobStart is when a job first ran; zero when it never did.
func jobStart(j *greenq.Job) time.Time {
	if len(j.Segments) > 0 {
		return j.Segments[0].Start
	}
	if j.Run != nil {
		return j.Run.StartedAt
	}
	return time.Time{}
}

// jobTime places a job in time for selection and monthly breakdowns: its
// first run start, else its submit time.
func jobTime(j *greenq.Job) time.Time {
	if t := jobStart(j); !t.IsZero() {
		return t.UTC()
	}
	return j.SubmittedAt.UTC()
}
