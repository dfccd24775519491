package api

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
)

// PlanEntry is one pending or planned job in GET /v1/plan: where and when it
// will run, what that emits and costs, and the run-now baseline.
type PlanEntry struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Tenant      string       `json:"tenant,omitempty"`
	State       greenq.State `json:"state"`
	GPUs        int          `json:"gpus"`
	SubmittedAt time.Time    `json:"submitted_at"`
	Deadline    time.Time    `json:"deadline"`
	// Region, Start and End are empty until the planner has placed the job.
	Region          string           `json:"region,omitempty"`
	Start           *time.Time       `json:"start,omitempty"`
	End             *time.Time       `json:"end,omitempty"`
	ExpectedGCO2    float64          `json:"expected_gco2"`
	ExpectedCostUSD float64          `json:"expected_cost_usd"`
	ExpectedKWh     float64          `json:"expected_kwh"`
	SavedGCO2       float64          `json:"saved_gco2"`
	Deferred        bool             `json:"deferred"`
	Urgent          bool             `json:"urgent,omitempty"`
	Reason          string           `json:"reason,omitempty"`
	Baseline        *greenq.Baseline `json:"baseline,omitempty"`
	// SavedByWaitingGCO2 + SavedByMovingGCO2 = SavedGCO2 (greenq.Plan).
	SavedByWaitingGCO2 float64 `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2  float64 `json:"saved_by_moving_gco2"`
	// Held is set when no window under the job's price cap is left before
	// its deadline: no region or window, never released above the cap.
	Held bool `json:"held,omitempty"`
}

// PlanTotals sums a plan.
type PlanTotals struct {
	Jobs            int     `json:"jobs"`
	Deferred        int     `json:"deferred"`
	ExpectedGCO2    float64 `json:"expected_gco2"`
	BaselineGCO2    float64 `json:"baseline_gco2"`
	SavedGCO2       float64 `json:"saved_gco2"`
	ExpectedKWh     float64 `json:"expected_kwh"`
	ExpectedCostUSD float64 `json:"expected_cost_usd"`
	// SavedByWaitingGCO2 + SavedByMovingGCO2 = SavedGCO2.
	SavedByWaitingGCO2 float64 `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2  float64 `json:"saved_by_moving_gco2"`
}

// PlanResponse is GET /v1/plan.
type PlanResponse struct {
	GeneratedAt time.Time   `json:"generated_at"`
	Jobs        []PlanEntry `json:"jobs"`
	Totals      PlanTotals  `json:"totals"`
}

// Option is one region and window weighed for a job (GET /v1/plan?explain=ID).
type Option struct {
	Region string `json:"region"`
	// Start and End are absent for a region with no window at all.
	Start           time.Time `json:"start,omitzero"`
	End             time.Time `json:"end,omitzero"`
	ExpectedGCO2    float64   `json:"expected_gco2"`
	ExpectedCostUSD float64   `json:"expected_cost_usd"`
	// Rejected says why the option lost; empty for the chosen one.
	Rejected string `json:"rejected,omitempty"`
}

// Explanation is GET /v1/plan?explain=ID: the job's plan as the chosen
// option, the options the planner weighed when it made that plan (the best
// window of each allowed region, each with the planner's verdict) ending
// with the run-now baseline, and the plan's reason.
type Explanation struct {
	Job          PlanEntry `json:"job"`
	Chosen       *Option   `json:"chosen,omitempty"`
	Alternatives []Option  `json:"alternatives"`
	Why          string    `json:"why"`
}

func entry(j *greenq.Job, now time.Time) PlanEntry {
	e := PlanEntry{ID: j.ID, Name: j.Name, Tenant: j.Tenant, State: j.State, GPUs: j.GPUs,
		SubmittedAt: j.SubmittedAt, Deadline: j.Deadline}
	if p := j.Plan; p != nil && p.Held {
		e.Held, e.Reason = true, p.Reason
		b := p.Baseline
		e.Baseline = &b
	} else if p != nil {
		start, end := p.Start, p.End
		if end.IsZero() {
			end = start.Add(j.Duration())
		}
		e.Region, e.Start, e.End = p.Region, &start, &end
		e.ExpectedGCO2, e.ExpectedCostUSD, e.ExpectedKWh = p.ExpectedGCO2, p.ExpectedCostUSD, p.ExpectedKWh
		e.SavedGCO2 = p.Baseline.ExpectedGCO2 - p.ExpectedGCO2
		e.SavedByWaitingGCO2, e.SavedByMovingGCO2 = p.SavedByWaitingGCO2, p.SavedByMovingGCO2
		e.Urgent, e.Reason = p.Urgent, p.Reason
		b := p.Baseline
		e.Baseline = &b
		e.Deferred = start.After(now)
	}
	return e
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	if err := onlyParams(q, "explain"); err != nil {
		return err
	}
	now := s.cfg.Now()
	if id := q.Get("explain"); q.Has("explain") {
		if id == "" {
			return greenq.Invalid("explain", "needs a job id")
		}
		x, err := s.explain(r, p, id, now)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, x)
		return nil
	}
	jobs, err := s.store.Pending(r.Context())
	if err != nil {
		return fmt.Errorf("list pending jobs: %w", err)
	}
	out := PlanResponse{GeneratedAt: now.UTC(), Jobs: []PlanEntry{}}
	for _, j := range jobs {
		if !p.admin && j.Tenant != p.tenant {
			continue
		}
		e := entry(j, now)
		out.Jobs = append(out.Jobs, e)
		t := &out.Totals
		t.Jobs++
		if e.Deferred {
			t.Deferred++
		}
		t.ExpectedGCO2 += e.ExpectedGCO2
		t.SavedGCO2 += e.SavedGCO2
		t.SavedByWaitingGCO2 += e.SavedByWaitingGCO2
		t.SavedByMovingGCO2 += e.SavedByMovingGCO2
		t.ExpectedKWh += e.ExpectedKWh
		t.ExpectedCostUSD += e.ExpectedCostUSD
		if e.Baseline != nil && !e.Held {
			t.BaselineGCO2 += e.Baseline.ExpectedGCO2
		}
	}
	slices.SortStableFunc(out.Jobs, func(a, b PlanEntry) int {
		return cmp.Or(compareTimes(a.Start, b.Start), a.Deadline.Compare(b.Deadline), cmp.Compare(a.ID, b.ID))
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

func compareTimes(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return a.Compare(*b)
}

// explain explains job id's plan through the store's planning adapter:
// the chosen option is the stored plan, the alternatives those the planner
// weighed when it made it, ending with the run-now baseline.
func (s *Server) explain(r *http.Request, p principal, id string, now time.Time) (*Explanation, error) {
	j, px, err := s.store.Explain(r.Context(), p.scope(), id, now)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	x := &Explanation{Job: entry(j, now), Alternatives: make([]Option, len(px.Alternatives)), Why: px.Why}
	if c := px.Chosen; c != nil {
		o := option(*c)
		x.Chosen = &o
	}
	for i, o := range px.Alternatives {
		x.Alternatives[i] = option(o)
	}
	return x, nil
}

func option(o planning.Option) Option {
	return Option{Region: o.Region, Start: o.Start, End: o.End, ExpectedGCO2: o.ExpectedGCO2,
		ExpectedCostUSD: o.ExpectedCostUSD, Rejected: o.Rejected}
}

// Summary is GET /v1/summary: totals over the caller's jobs, for the
// dashboard.
type Summary struct {
	Jobs    int                  `json:"jobs"`
	ByState map[greenq.State]int `json:"by_state"`
	// Deferred counts pending and planned jobs whose planned start is later
	// than now.
	Deferred int `json:"deferred"`
	// EmittedGCO2, SavedGCO2 and EnergyKWh sum the receipts of finished jobs.
	EmittedGCO2 float64 `json:"emitted_gco2"`
	SavedGCO2   float64 `json:"saved_gco2"`
	EnergyKWh   float64 `json:"energy_kwh"`
	// PlannedSavedGCO2 is what the plans of unreleased jobs expect to save.
	PlannedSavedGCO2 float64 `json:"planned_saved_gco2"`
	// SavedByWaitingGCO2 + SavedByMovingGCO2 = SavedGCO2, from the
	// receipts; CostUSD sums their measured cost, PlannedCostUSD the
	// expected cost of jobs not yet run.
	SavedByWaitingGCO2 float64 `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2  float64 `json:"saved_by_moving_gco2"`
	CostUSD            float64 `json:"cost_usd"`
	PlannedCostUSD     float64 `json:"planned_cost_usd"`
	// Truncated is set when only the first MaxSummaryJobs jobs were read.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxSummaryJobs bounds how many jobs GET /v1/summary reads.
const MaxSummaryJobs = 20000

func (s *Server) summary(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	now := s.cfg.Now()
	out := Summary{ByState: map[greenq.State]int{}}
	opts := listAll(p)
	for {
		jobs, next, err := s.store.List(r.Context(), opts)
		if err != nil {
			return fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range jobs {
			out.Jobs++
			out.ByState[j.State]++
			if rc := j.Receipt; rc != nil {
				out.EmittedGCO2 += rc.GCO2
				out.SavedGCO2 += rc.SavedGCO2
				out.SavedByWaitingGCO2 += rc.SavedByWaitingGCO2
				out.SavedByMovingGCO2 += rc.SavedByMovingGCO2
				out.CostUSD += rc.CostUSD
				out.EnergyKWh += rc.EnergyKWh
			}
			if (j.State == greenq.StatePending || j.State == greenq.StatePlanned) && j.Plan != nil {
				if j.Plan.Start.After(now) {
					out.Deferred++
				}
				if !j.Plan.Held {
					out.PlannedSavedGCO2 += j.Plan.Baseline.ExpectedGCO2 - j.Plan.ExpectedGCO2
					out.PlannedCostUSD += j.Plan.ExpectedCostUSD
				}
			}
		}
		if next == "" || len(jobs) == 0 {
			break
		}
		if out.Jobs >= MaxSummaryJobs {
			out.Truncated = true
			break
		}
		opts.Cursor = next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
