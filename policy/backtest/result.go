package backtest

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Result is the outcome of a back-test; it marshals to the JSON of
// `greenq simulate -o json`.
type Result struct {
	Jobs    int      `json:"jobs"`
	Regions []string `json:"regions"`
	// Policies scores each policy on the actual series.
	Policies Policies `json:"policies"`
	// FractionOfOracleSavings is (now − greenq) / (now − oracle); 0 when
	// the oracle saves nothing.
	FractionOfOracleSavings float64 `json:"fraction_of_oracle_savings"`
	// Placements are greenq's run segments, by job then time.
	Placements []Placement `json:"-"`
	// ReferencePlacements are the reference policy's, likewise.
	ReferencePlacements []Placement `json:"-"`
}

// Policies holds one score per policy.
type Policies struct {
	Now    PolicyResult `json:"now"`
	GreenQ PolicyResult `json:"greenq"`
	// Reference is the causal heuristic greenq is measured against (see
	// runReference): a 7-day hourly profile plus the current deviation
	// decaying over 12 h, re-decided every hour.
	Reference PolicyResult `json:"reference"`
	Oracle    PolicyResult `json:"oracle"`
}

// PolicyResult is one policy's score.
type PolicyResult struct {
	// GCO2 is the total gCO2e on the actual series (for the oracle under
	// capacity limits: a lower bound).
	GCO2 float64 `json:"gco2"`
	// KWh is the total energy, PUE included.
	KWh float64 `json:"kwh"`
	// DeadlineMisses counts jobs that finished after their deadline.
	DeadlineMisses int `json:"deadline_misses"`
	// MeanDelayS is the mean time from submit to first start, in seconds.
	MeanDelayS float64 `json:"mean_delay_s"`
	// PlannerSeconds is the wall time spent in policy.Plan (greenq only).
	PlannerSeconds *float64 `json:"planner_seconds,omitempty"`
	// PlanRounds counts calls of policy.Plan (greenq only).
	PlanRounds int `json:"plan_rounds,omitempty"`
	// PlannerFallbacks counts unusable planner answers replaced by a run at
	// once (greenq only; should be 0).
	PlannerFallbacks int `json:"planner_fallbacks,omitempty"`
	// DominanceViolations counts interruptible jobs that were, at some
	// decision, planned to emit more (expected gCO2e, beyond the
	// hysteresis a kept plan may lag by) than the same job planned in one
	// piece in the same round would (greenq only; checked in rounds
	// without capacity limits or a carbon price; should be 0).
	DominanceViolations *int `json:"dominance_violations,omitempty"`
	// Exact is false when GCO2 is a lower bound (oracle only).
	Exact *bool `json:"exact,omitempty"`
	// FractionOfOracleSavings is (now − this policy) / (now − oracle), 0
	// when the oracle saves nothing (greenq and reference only).
	FractionOfOracleSavings *float64 `json:"fraction_of_oracle_savings,omitempty"`
}

// Placement is one run segment of one job.
type Placement struct {
	JobID  string
	Region string
	Start  time.Time
	End    time.Time
}

// scoreAll scores per-job segments on the actual series.
func (s *sim) scoreAll(segs [][]seg) PolicyResult {
	var out PolicyResult
	var delay float64
	for k, ss := range segs {
		j := &s.jobs[k]
		for _, sg := range ss {
			rg := s.regions[sg.region]
			kwhPerSec := float64(j.GPUs) * j.PowerW / 1000 / 3600 * rg.pue
			out.GCO2 += kwhPerSec * rg.step.integral(sg.start, sg.end)
			out.KWh += kwhPerSec * float64(sg.end-sg.start) / 1e9
		}
		if len(ss) == 0 {
			continue
		}
		if ss[len(ss)-1].end > ns(j.Deadline) {
			out.DeadlineMisses++
		}
		delay += float64(ss[0].start-ns(j.Submit)) / 1e9
	}
	if len(segs) > 0 {
		out.MeanDelayS = delay / float64(len(segs))
	}
	return out
}

func (s *sim) placements(segs [][]seg) []Placement {
	var out []Placement
	for k, ss := range segs {
		for _, sg := range ss {
			out = append(out, Placement{JobID: s.jobs[k].ID, Region: s.regions[sg.region].name, Start: fromNS(sg.start), End: fromNS(sg.end)})
		}
	}
	return out
}

// WritePlacements writes placements as CSV: id,region,start_utc,end_utc,
// one row per run segment, times in RFC 3339 UTC.
func WritePlacements(w io.Writer, ps []Placement) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "region", "start_utc", "end_utc"}); err != nil {
		return fmt.Errorf("write placements: %w", err)
	}
	for _, p := range ps {
		if err := cw.Write([]string{p.JobID, p.Region, p.Start.UTC().Format(time.RFC3339Nano), p.End.UTC().Format(time.RFC3339Nano)}); err != nil {
			return fmt.Errorf("write placements: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write placements: %w", err)
	}
	return nil
}

// WriteTable writes the result as a table for people.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\tkgCO2e\tvs now\tkWh\tdeadline misses\tmean delay\t\n")
	now := r.Policies.Now.GCO2
	for _, p := range []struct {
		name string
		pr   PolicyResult
	}{{"now", r.Policies.Now}, {"greenq", r.Policies.GreenQ}, {"reference", r.Policies.Reference}, {"oracle", r.Policies.Oracle}} {
		vs := "-"
		if now > 0 {
			vs = fmt.Sprintf("%+.2f%%", 100*(p.pr.GCO2-now)/now)
		}
		name := p.name
		if p.pr.Exact != nil && !*p.pr.Exact {
			name += " (lower bound)"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%.1f\t%d\t%s\t\n", name, p.pr.GCO2/1000, vs, p.pr.KWh, p.pr.DeadlineMisses, (time.Duration(p.pr.MeanDelayS) * time.Second).Round(time.Minute))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	regions := slices.Clone(r.Regions)
	_, err := fmt.Fprintf(w, "\n%d jobs, %d regions; greenq captured %.1f%% of the oracle's savings", r.Jobs, len(regions), 100*r.FractionOfOracleSavings)
	if err == nil && r.Policies.GreenQ.PlannerSeconds != nil {
		_, err = fmt.Fprintf(w, " (planner %.2fs in %d rounds)", *r.Policies.GreenQ.PlannerSeconds, r.Policies.GreenQ.PlanRounds)
	}
	if f := r.Policies.Reference.FractionOfOracleSavings; err == nil && f != nil {
		_, err = fmt.Fprintf(w, "; the reference policy %.1f%%", 100**f)
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
