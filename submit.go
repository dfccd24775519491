package greenq

import (
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a submission may ask for.
const (
	MaxTrials      = 1000
	MaxGPUs        = 1024
	MaxNameLen     = 200
	MaxCommandArgs = 1024
	MaxCommandLen  = 64 << 10 // bytes over all arguments
	MaxTags        = 32
	// MaxDeadlineAhead bounds how far in the future a deadline may lie.
	MaxDeadlineAhead = 90 * 24 * time.Hour
	// DefaultDuration is assumed when a job gives no estimate and none was
	// measured before, unless its deadline is near (DefaultDurationWithin).
	DefaultDuration = time.Hour
)

// Where a job's duration estimate came from (Job.EstimateSource).
const (
	EstimateUser     = "user"     // the submission's duration_estimate_s
	EstimateMeasured = "measured" // earlier successful runs of the same name
	EstimateDefault  = "default"  // neither: DefaultDurationWithin
)

// DefaultDurationWithin is the duration assumed for a job that gives none
// and whose name has no measured run, window being the time from submit to
// its deadline: DefaultDuration, or a quarter of the window when that is
// shorter (at least a second). A quarter leaves three quarters of the
// window for the planner to choose a cleaner start and keep its safety
// margin, while a job running up to about twice as long as assumed still
// finishes by the deadline from the latest start the planner picks; an
// assumed hour would make every deadline under an hour "cannot finish",
// released at once with no choice at all. A quarter of four minutes or
// more is cut to whole minutes.
func DefaultDurationWithin(window time.Duration) time.Duration {
	d := min(DefaultDuration, window/4)
	if d >= time.Minute {
		return d.Truncate(time.Minute)
	}
	return max(d.Truncate(time.Second), time.Second)
}

// shortDuration writes d as time.Duration.String does without zero tails:
// 9h42m, 2m, 1h, 1m30s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// SubmitRequest holds the job fields a user sets (POST /v1/jobs, greenq
// submit). Deadline is an RFC 3339 time or a Go duration from now ("24h").
type SubmitRequest struct {
	Name                  string            `json:"name,omitempty"`
	Kind                  Kind              `json:"kind,omitempty"`
	Command               []string          `json:"command"`
	GPUs                  int               `json:"gpus,omitempty"`
	Regions               []string          `json:"regions,omitempty"`
	HomeRegion            string            `json:"home_region,omitempty"` // see Normalize
	Interruptible         bool              `json:"interruptible,omitempty"`
	DurationEstimateS     int64             `json:"duration_estimate_s,omitempty"`
	Trials                int               `json:"trials,omitempty"`
	Key                   string            `json:"key,omitempty"`
	Deadline              string            `json:"deadline"`
	Tags                  map[string]string `json:"tags,omitempty"`
	MaxPriceUSDPerGPUHour float64           `json:"max_price_usd_per_gpu_hour,omitempty"`
	PowerW                float64           `json:"power_w,omitempty"`
	FunctionalUnit        string            `json:"functional_unit,omitempty"`
	JobSpec
}

// ParseDeadline reads s as an RFC 3339 time or as a Go duration from now.
func ParseDeadline(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, Invalid("deadline", "is required: a Go duration such as 24h or an RFC 3339 time")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, Invalid("deadline", "%q is neither a Go duration (24h) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return t, nil
}

// Normalize validates r against now and the known region names, fills its
// defaults (kind train, 1 GPU, 1 trial, home region the first of Regions,
// else the first known region) and returns the parsed deadline. The home
// region is where "run now" means, the baseline savings are counted
// against; it must be one of Regions when those are given. Errors are
// *Error with CodeInvalidArgument naming the field.
func (r *SubmitRequest) Normalize(now time.Time, knownRegions []string) (time.Time, error) {
	if r.Kind == "" {
		r.Kind = KindTrain
		if r.Trials > 1 {
			r.Kind = KindSweep
		}
	}
	if r.GPUs == 0 {
		r.GPUs = 1
	}
	if r.Trials == 0 {
		r.Trials = 1
	}
	if err := r.validateFields(knownRegions); err != nil {
		return time.Time{}, err
	}
	if r.HomeRegion == "" {
		switch {
		case len(r.Regions) > 0:
			r.HomeRegion = r.Regions[0]
		case len(knownRegions) > 0:
			r.HomeRegion = knownRegions[0]
		}
	}
	deadline, err := ParseDeadline(r.Deadline, now)
	if err != nil {
		return time.Time{}, err
	}
	if !deadline.After(now) {
		return time.Time{}, Invalid("deadline", "%s is not in the future", deadline.UTC().Format(time.RFC3339))
	}
	if deadline.Sub(now) > MaxDeadlineAhead {
		return time.Time{}, Invalid("deadline", "is more than %s ahead", MaxDeadlineAhead)
	}
	if d := time.Duration(r.DurationEstimateS) * time.Second; d > 0 && now.Add(d).After(deadline) {
		return time.Time{}, Invalid("deadline", "leaves %s, less than the duration estimate of %s", shortDuration(deadline.Sub(now).Truncate(time.Second)), shortDuration(d))
	}
	return deadline, nil
}

func (r *SubmitRequest) validateFields(knownRegions []string) error {
	if !r.Kind.Valid() {
		return Invalid("kind", "%q is not one of train, sweep, infer", r.Kind)
	}
	if len(r.Command) == 0 || r.Command[0] == "" {
		return Invalid("command", "is required: the program and its arguments")
	}
	if len(r.Command) > MaxCommandArgs {
		return Invalid("command", "has %d arguments, more than %d", len(r.Command), MaxCommandArgs)
	}
	total := 0
	for _, a := range r.Command {
		total += len(a)
		if strings.ContainsRune(a, 0) {
			return Invalid("command", "contains a NUL byte")
		}
		if !utf8.ValidString(a) {
			return Invalid("command", "is not valid UTF-8")
		}
	}
	if total > MaxCommandLen {
		return Invalid("command", "is %d bytes, more than %d", total, MaxCommandLen)
	}
	if len(r.Name) > MaxNameLen {
		return Invalid("name", "is %d bytes, more than %d", len(r.Name), MaxNameLen)
	}
	if !utf8.ValidString(r.Name) || strings.ContainsRune(r.Name, 0) {
		return Invalid("name", "is not valid UTF-8 text")
	}
	if r.GPUs < 0 || r.GPUs > MaxGPUs {
		return Invalid("gpus", "must be between 1 and %d, got %d", MaxGPUs, r.GPUs)
	}
	if r.Trials < 1 || r.Trials > MaxTrials {
		return Invalid("trials", "must be between 1 and %d, got %d", MaxTrials, r.Trials)
	}
	if r.DurationEstimateS < 0 {
		return Invalid("duration_estimate_s", "must not be negative, got %d", r.DurationEstimateS)
	}
	if r.DurationEstimateS > int64(MaxDeadlineAhead/time.Second) {
		return Invalid("duration_estimate_s", "is longer than %s", MaxDeadlineAhead)
	}
	for _, reg := range r.Regions {
		if !slices.Contains(knownRegions, reg) {
			return Invalid("regions", "unknown region %q (known: %s)", reg, strings.Join(knownRegions, ", "))
		}
	}
	switch h := r.HomeRegion; {
	case h == "":
	case len(r.Regions) > 0 && !slices.Contains(r.Regions, h):
		return Invalid("home_region", "%q is not one of the job's regions (%s): the home region is where running at once would run, so the job must be allowed there", h, strings.Join(r.Regions, ", "))
	case len(r.Regions) == 0 && len(knownRegions) > 0 && !slices.Contains(knownRegions, h):
		return Invalid("home_region", "unknown region %q (known: %s)", h, strings.Join(knownRegions, ", "))
	}
	if bad(r.MaxPriceUSDPerGPUHour) {
		return Invalid("max_price_usd_per_gpu_hour", "must be a finite number ≥ 0")
	}
	if bad(r.PowerW) || r.PowerW > 10000 {
		return Invalid("power_w", "must be a finite number between 0 and 10000 watts")
	}
	if len(r.Tags) > MaxTags {
		return Invalid("tags", "has %d tags, more than %d", len(r.Tags), MaxTags)
	}
	for k, v := range r.Tags {
		if k == "" || len(k) > 64 || len(v) > 256 || !utf8.ValidString(k+v) || strings.ContainsAny(k, "=,\x00") {
			return Invalid("tags", "tag %q is not key=value with a key of 1–64 bytes (no '=' or ',') and a value of at most 256", k)
		}
	}
	if len(r.Key) > 200 || !utf8.ValidString(r.Key) {
		return Invalid("key", "must be at most 200 bytes of UTF-8")
	}
	if len(r.FunctionalUnit) > 200 {
		return Invalid("functional_unit", "must be at most 200 bytes")
	}
	return r.JobSpec.validate()
}

func bad(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f < 0 }
