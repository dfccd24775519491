package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/policy"
	"github.com/robfig/cron/v3"
)

// PlannerConfig configures a Planner.
type PlannerConfig struct {
	// Policy tunes package policy's planner.
	Policy policy.Config
	// Replan is when to re-plan, a robfig/cron spec (standard five fields
	// or a descriptor such as "@every 5m"). Default "@every 5m".
	Replan string
	// Coalesce is how long a triggered round waits for more triggers to
	// arrive, so a burst of submissions costs one round (each job already
	// has a provisional plan from Submit). Default 1s.
	Coalesce time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives round summaries and failures. Default: discard.
	Logger *slog.Logger
}

// Planner re-plans every job not yet released: it feeds the pending jobs,
// each region's series, live capacity and the GPUs held by released and
// running jobs to policy.Plan and stores the resulting plans.
type Planner struct {
	s       *Store
	cfg     PlannerConfig
	sched   cron.Schedule
	log     *slog.Logger
	trigger chan struct{}
	cache   jobCache // decoded pending and planned jobs kept between rounds
	// activeCache keeps the decoded released and running jobs.
	activeCache jobCache
	// published is when the region facts were last shared with workers.
	published time.Time
}

// NewPlanner returns a planner over s; it validates cfg (a bad Replan spec
// gives a CodeInvalidArgument error naming "replan").
func NewPlanner(s *Store, cfg PlannerConfig) (*Planner, error) {
	if s == nil {
		return nil, errors.New("new planner: store is nil")
	}
	if cfg.Replan == "" {
		cfg.Replan = "@every 5m"
	}
	sched, err := cron.ParseStandard(cfg.Replan)
	if err != nil {
		return nil, greenq.Invalid("replan", "%q is not a cron spec such as \"@every 5m\" or \"*/5 * * * *\": %v", cfg.Replan, err)
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = time.Second
	}
	if cfg.Coalesce < 0 {
		return nil, fmt.Errorf("new planner: Coalesce: must not be negative, got %s", cfg.Coalesce)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Planner{s: s, cfg: cfg, sched: sched, log: cfg.Logger.With("component", "planner"),
		trigger: make(chan struct{}, 1)}, nil
}

// Trigger asks for a round soon (a forecast landed, a job was submitted).
// Triggers arriving while one is pending coalesce into one round.
func (p *Planner) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Run plans once at start, then on the Replan schedule and on each
// Trigger (or wake from another replica), until ctx ends. It returns nil
// when ctx ends, or ErrFenced (wrapped) once a newer leader holds the lease.
func (p *Planner) Run(ctx context.Context) error {
	wakes := p.s.wakeEvents(ctx)
	for {
		if _, err := p.PlanOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrFenced) {
				return fmt.Errorf("planner: %w", err)
			}
			p.log.Warn("plan round", "err", err)
		}
		now := p.cfg.Now()
		if !sleepUntilWake(ctx, max(p.sched.Next(now).Sub(now), 0), p.trigger, &wakes, wakePlan) {
			return nil
		}
		// Let a burst of triggers settle into one round.
		c := time.NewTimer(p.cfg.Coalesce)
		select {
		case <-ctx.Done():
			c.Stop()
			return nil
		case <-c.C:
		}
		select {
		case <-p.trigger:
		default:
		}
	}
}

// publishEvery is how often the planner shares the region facts it plans
// with (Store.PublishRegions) with the workers that write receipts.
const publishEvery = 30 * time.Second

// PlanOnce runs one planning round and stores the plans that changed. It
// first shares the region facts with workers, at most every publishEvery.
func (p *Planner) PlanOnce(ctx context.Context) (policy.Result, error) {
	now := p.cfg.Now()
	if p.published.IsZero() || now.Sub(p.published) >= publishEvery || now.Before(p.published) {
		if err := p.s.PublishRegions(ctx); err != nil {
			p.log.Warn("share region facts with workers", "err", err)
		} else {
			p.published = now
		}
	}
	jobs, err := p.s.pendingCached(ctx, &p.cache)
	if err != nil {
		return policy.Result{}, fmt.Errorf("plan: %w", err)
	}
	if len(jobs) == 0 {
		return policy.Result{}, nil
	}
	in, err := p.input(ctx, now, jobs)
	if err != nil {
		return policy.Result{}, fmt.Errorf("plan: %w", err)
	}
	res := policy.Plan(in)
	fallback := map[string]string{}
	for _, r := range in.Regions {
		if isFallback(r.Series.Source) {
			fallback[r.Name] = cmp.Or(r.Series.Source, "none")
		}
	}
	plans := make(map[string]greenq.Plan, len(res.Assignments))
	for i, a := range res.Assignments {
		if a.Region == "" && !a.Held {
			p.log.Warn("job has no region to run in", "job", a.JobID, "reason", a.Reason)
			continue
		}
		pl := toPlan(a, now)
		if src, ok := fallback[a.Region]; ok {
			// Say when the plan rests on a fallback signal, not the provider's.
			pl.Reason += fmt.Sprintf(" (signal for %s: %s)", a.Region, src)
		}
		if j := jobs[i]; j.ID == a.JobID && j.State == planState(&pl) && samePlan(j.Plan, &pl) {
			// SetPlans would read the job only to skip it: a round where
			// nothing moved writes, and reads back, nothing.
			continue
		}
		plans[a.JobID] = pl
	}
	n, err := p.s.setPlans(ctx, plans, &p.cache)
	if err != nil {
		return res, fmt.Errorf("plan: %w", err)
	}
	p.log.Debug("planned", "jobs", len(jobs), "changed", n, "took", p.cfg.Now().Sub(now))
	return res, nil
}

// input gathers one round's policy input.
func (p *Planner) input(ctx context.Context, now time.Time, jobs []*greenq.Job) (policy.Input, error) {
	cfg := p.cfg.Policy.WithDefaults()
	use, err := p.s.policyRegions(ctx, now, cfg.Slot, true, false, &p.activeCache)
	if err != nil {
		return policy.Input{}, err
	}
	in := policy.Input{Now: now, Regions: use, Config: cfg, Jobs: make([]policy.Job, len(jobs))}
	for i, j := range jobs {
		in.Jobs[i] = toPolicyJob(j)
	}
	return in, nil
}

// busy returns the GPUs released and running jobs hold in region: from
// their start (or now) for their estimated duration, and at least one slot
// past now for a job running over its estimate.
func busy(active []*greenq.Job, region string, now time.Time, slot time.Duration) []policy.Usage {
	var out []policy.Usage
	for _, j := range active {
		reg, start := "", now
		switch {
		case j.Run != nil && j.State == greenq.StateRunning:
			reg, start = j.Run.Region, j.Run.StartedAt
		case j.Plan != nil:
			reg = j.Plan.Region
			if j.Plan.Start.After(now) {
				start = j.Plan.Start
			}
		}
		if reg != region {
			continue
		}
		end := start.Add(j.Duration() - doneDuration(j))
		if min := now.Add(slot); end.Before(min) {
			end = min
		}
		out = append(out, policy.Usage{Start: start, End: end, GPUs: j.GPUs})
	}
	return out
}

// toPolicyJob maps a stored job to what the planner needs. A paused job is
// planned for what is left of its run.
func toPolicyJob(j *greenq.Job) policy.Job {
	d := j.Duration() - doneDuration(j)
	if d < time.Second {
		d = time.Second
	}
	pj := policy.Job{
		ID: j.ID, Group: j.Group, GPUs: j.GPUs, Duration: d, PowerW: j.PowerW,
		Earliest: j.SubmittedAt, Deadline: j.Deadline, Regions: j.Regions, Home: j.HomeRegion,
		Interruptible: j.Interruptible, MaxPriceUSDPerGPUHour: j.MaxPriceUSDPerGPUHour,
	}
	if pl := j.Plan; pl != nil && j.State == greenq.StatePlanned && !pl.Held {
		segs := make([]policy.Window, 0, max(len(pl.Segments), 1))
		for _, w := range pl.Segments {
			segs = append(segs, policy.Window{Start: w.Start, End: w.End})
		}
		if len(segs) == 0 {
			segs = append(segs, policy.Window{Start: pl.Start, End: pl.End})
		}
		pj.Current = &policy.Assignment{
			JobID: j.ID, Region: pl.Region, Segments: segs, ExpectedKWh: pl.ExpectedKWh,
			ExpectedGCO2: pl.ExpectedGCO2, ExpectedCostUSD: pl.ExpectedCostUSD, Urgent: pl.Urgent, Reason: pl.Reason,
			Baseline: policy.Baseline{Region: pl.Baseline.Region, Start: pl.Baseline.Start, ExpectedGCO2: pl.Baseline.ExpectedGCO2},
		}
	}
	return pj
}

// toPlan turns an assignment into the plan stored on the job.
func toPlan(a policy.Assignment, now time.Time) greenq.Plan {
	p := greenq.Plan{
		Region: a.Region, Start: a.Start().UTC(), End: a.End().UTC(),
		ExpectedGCO2: a.ExpectedGCO2, ExpectedCostUSD: a.ExpectedCostUSD, ExpectedKWh: a.ExpectedKWh,
		Reason: a.Reason, Urgent: a.Urgent, Held: a.Held, PlannedAt: now.UTC(),
		Baseline: greenq.Baseline{Region: a.Baseline.Region, Start: a.Baseline.Start.UTC(), ExpectedGCO2: a.Baseline.ExpectedGCO2,
			ExpectedCostUSD: a.Baseline.ExpectedCostUSD},
		SavedByWaitingGCO2: a.SavedByWaitingGCO2, SavedByMovingGCO2: a.SavedByMovingGCO2,
	}
	if p.Held {
		// No window under the job's price cap: not to be released.
		p.Start, p.End = time.Time{}, time.Time{}
		return p
	}
	if p.Start.IsZero() {
		// No window at all: release at once.
		p.Start, p.End, p.Urgent = now.UTC(), now.UTC(), true
	}
	if len(a.Segments) > 1 {
		for _, w := range a.Segments {
			p.Segments = append(p.Segments, greenq.Window{Start: w.Start.UTC(), End: w.End.UTC()})
		}
	}
	for _, alt := range a.Alternatives {
		p.Alternatives = append(p.Alternatives, greenq.Alternative{Region: alt.Region, Start: alt.Start.UTC(),
			ExpectedGCO2: alt.ExpectedGCO2, ExpectedCostUSD: alt.ExpectedCostUSD, Rejected: alt.Rejected})
	}
	return p
}

// planState is the state a job with plan p is in: planned, or pending
// while p holds it (no window under its price cap).
func planState(p *greenq.Plan) greenq.State {
	if p != nil && p.Held {
		return greenq.StatePending
	}
	return greenq.StatePlanned
}

// isFallback reports whether a series source names one of the forecast
// refresh's fallbacks: a provider's last good series, greenq's own
// forecaster, or no signal at all.
func isFallback(source string) bool {
	return source == "" || source == "none" || strings.HasSuffix(source, ":last-good") || strings.HasPrefix(source, "greenq-forecaster")
}
