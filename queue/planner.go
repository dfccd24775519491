package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
	"github.com/robfig/cron/v3"
)

// PlannerConfig configures a Planner.
type PlannerConfig struct {
	// Policy is ignored: the planner plans with its store's planning
	// adapter, made from the store's Config.Policy, the one planner
	// configuration. A non-zero Policy must equal that one (NewPlanner
	// refuses another).
	//
	// Deprecated: set Config.Policy on the store instead.
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

// roundReader is what one planning round reads: the jobs to plan and the
// regions' facts, each through a cache the planner keeps between rounds.
// *Store implements it.
type roundReader interface {
	pendingCached(ctx context.Context, c *jobCache) ([]*greenq.Job, error)
	roundRegions(ctx context.Context, active *jobCache) ([]planning.Region, error)
}

// planWriter stores a round's changed plans (Store.SetPlans through the
// planner's cache). *Store implements it.
type planWriter interface {
	setPlans(ctx context.Context, plans map[string]greenq.Plan, c *jobCache) (int, error)
}

// Planner re-plans every job not yet released: it hands the pending jobs,
// each region's series, live capacity and the GPUs held by released and
// running jobs to the planning adapter and stores the resulting plans.
type Planner struct {
	s       *Store
	read    roundReader
	write   planWriter
	plan    *planning.Planner
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
	if cfg.Policy != (policy.Config{}) && cfg.Policy.WithDefaults() != s.plan.Config() {
		return nil, errors.New("new planner: Policy: differs from the store's Config.Policy, the one planner configuration; set it there")
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
	return &Planner{s: s, read: s, write: s, plan: s.plan, cfg: cfg, sched: sched, log: cfg.Logger.With("component", "planner"),
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
// Jobs with no region to run in are logged and left unplanned.
func (p *Planner) PlanOnce(ctx context.Context) (Round, error) {
	now := p.cfg.Now()
	if p.published.IsZero() || now.Sub(p.published) >= publishEvery || now.Before(p.published) {
		if err := p.s.PublishRegions(ctx); err != nil {
			p.log.Warn("share region facts with workers", "err", err)
		} else {
			p.published = now
		}
	}
	jobs, err := p.read.pendingCached(ctx, &p.cache)
	if err != nil {
		return Round{}, fmt.Errorf("plan: %w", err)
	}
	if len(jobs) == 0 {
		return Round{}, nil
	}
	regions, err := p.read.roundRegions(ctx, &p.activeCache)
	if err != nil {
		return Round{}, fmt.Errorf("plan: %w", err)
	}
	var round Round
	changed := map[string]greenq.Plan{}
	for i, pl := range p.plan.Plan(now, jobs, regions) {
		j := jobs[i]
		if !planning.Placed(pl) {
			p.log.Warn("job has no region to run in", "job", j.ID, "reason", pl.Reason)
			continue
		}
		round.Planned++
		if j.State == planState(&pl) && samePlan(j.Plan, &pl) {
			// SetPlans would read the job only to skip it: a round where
			// nothing moved writes, and reads back, nothing.
			continue
		}
		changed[j.ID] = pl
	}
	round.Changed, err = p.write.setPlans(ctx, changed, &p.cache)
	if err != nil {
		return round, fmt.Errorf("plan: %w", err)
	}
	p.log.Debug("planned", "jobs", len(jobs), "changed", round.Changed, "took", p.cfg.Now().Sub(now))
	return round, nil
}

// Round is what one planning round (PlanOnce) did.
type Round struct {
	// Planned counts the jobs the round gave a plan (placed or held).
	Planned int
	// Changed counts those whose stored plan changed.
	Changed int
}

// planState is the state a job with plan p is in: planned, or pending
// while p holds it (no window under its price cap).
func planState(p *greenq.Plan) greenq.State {
	if p != nil && p.Held {
		return greenq.StatePending
	}
	return greenq.StatePlanned
}
