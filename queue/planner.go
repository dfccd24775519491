package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/robfig/cron/v3"
)

// PlannerConfig configures a Planner.
type PlannerConfig struct {
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

// roundReader is what one planning round reads: the versions and records
// of jobs (so the planner's caches decode only the jobs that changed), the
// configured regions with live capacity and each live worker's GPUs, and
// each region's series. *Store implements it.
type roundReader interface {
	jobSource
	liveRegions(ctx context.Context) ([]greenq.Region, map[string][]int, error)
	planning.SeriesReader
}

// planWriter stores a round's changed plans, each against the record the
// round read, and returns the records written at their new version; and
// asks workers to pause running jobs. *Store implements it
// (Store.SetPlans, Store.PauseEvents).
type planWriter interface {
	writePlans(ctx context.Context, changes []planChange) ([]*row, int, error)
	publishPauses(ctx context.Context, ids []string) error
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
	// pending keeps the decoded pending and planned jobs between rounds,
	// active the released and running ones.
	pending, active jobCache
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
// first shares the region facts with workers, at most every publishEvery,
// and asks the workers of running interruptible jobs that are better
// paused (planning.Planner.Pauses) to pause them. Jobs with no region to
// run in are logged and left unplanned.
//
// A round reads through roundReader (the jobs through the planner's own
// caches), plans in the adapter and writes through planWriter, in that
// order; it calls nothing else of the store.
func (p *Planner) PlanOnce(ctx context.Context) (Round, error) {
	now := p.cfg.Now()
	p.publish(ctx, now)
	jobs, err := p.pending.pending(ctx, p.read)
	if err != nil {
		return Round{}, fmt.Errorf("plan: %w", err)
	}
	active, err := p.active.active(ctx, p.read)
	if err != nil {
		return Round{}, fmt.Errorf("plan: %w", err)
	}
	running := interruptibleRunning(active)
	if len(jobs) == 0 && len(running) == 0 {
		return Round{}, nil
	}
	regions, err := p.regions(ctx, active)
	if err != nil {
		return Round{}, fmt.Errorf("plan: %w", err)
	}
	var round Round
	if len(running) > 0 {
		round.Paused = p.pauseRunning(ctx, now, running, regions)
	}
	if len(jobs) == 0 {
		return round, nil
	}
	planned, changes := p.changes(jobs, p.plan.Plan(now, jobs, regions))
	written, changed, err := p.write.writePlans(ctx, changes)
	p.pending.put(written)
	round.Planned, round.Changed = planned, changed
	if err != nil {
		return round, fmt.Errorf("plan: %w", err)
	}
	p.log.Debug("planned", "jobs", len(jobs), "changed", round.Changed, "paused", round.Paused, "took", p.cfg.Now().Sub(now))
	return round, nil
}

// interruptibleRunning returns the running interruptible jobs of active.
func interruptibleRunning(active []*greenq.Job) []*greenq.Job {
	var out []*greenq.Job
	for _, j := range active {
		if j.Interruptible && j.State == greenq.StateRunning {
			out = append(out, j)
		}
	}
	return out
}

// pauseRunning asks for the pauses the adapter finds among running and
// returns how many it asked for. A pause that cannot be published is
// logged: the job runs on to the end of its segment, as without one.
func (p *Planner) pauseRunning(ctx context.Context, now time.Time, running []*greenq.Job, regions []planning.Region) int {
	ids := p.plan.Pauses(now, running, regions)
	if len(ids) == 0 {
		return 0
	}
	if err := p.write.publishPauses(ctx, ids); err != nil {
		p.log.Warn("ask workers to pause jobs", "jobs", ids, "err", err)
		return 0
	}
	p.log.Info("pausing running jobs for better hours ahead", "jobs", ids)
	return len(ids)
}

// publish shares the region facts with workers (Store.PublishRegions) if
// it last did so publishEvery before now or more.
func (p *Planner) publish(ctx context.Context, now time.Time) {
	if !p.published.IsZero() && now.Sub(p.published) < publishEvery && !now.Before(p.published) {
		return
	}
	if err := p.s.PublishRegions(ctx); err != nil {
		p.log.Warn("share region facts with workers", "err", err)
		return
	}
	p.published = now
}

// regions returns the regions as the round sees them: live capacity and
// worker sizes, the released and running jobs active and each region's
// series.
func (p *Planner) regions(ctx context.Context, active []*greenq.Job) ([]planning.Region, error) {
	regions, sizes, err := p.read.liveRegions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]planning.Region, len(regions))
	for i, r := range regions {
		f, err := planning.ReadRegion(ctx, p.read, r)
		if err != nil {
			return nil, err
		}
		f.Live, f.Workers, f.Active = true, sizes[r.Name], active
		out[i] = f
	}
	return out, nil
}

// changes returns the round's count of planned jobs and the plans that
// differ from what jobs (in plans' order) hold, each against the record
// the round read.
func (p *Planner) changes(jobs []*greenq.Job, plans []greenq.Plan) (int, []planChange) {
	planned := 0
	var out []planChange
	for i, pl := range plans {
		j := jobs[i]
		if !planning.Placed(pl) {
			p.log.Warn("job has no region to run in", "job", j.ID, "reason", pl.Reason)
			continue
		}
		planned++
		if j.State == planState(&pl) && samePlan(j.Plan, &pl) {
			// The store would read the job only to skip it: a round where
			// nothing moved writes, and reads back, nothing.
			continue
		}
		out = append(out, planChange{id: j.ID, plan: pl, read: p.pending.row(j.ID)})
	}
	return planned, out
}

// Round is what one planning round (PlanOnce) did.
type Round struct {
	// Planned counts the jobs the round gave a plan (placed or held).
	Planned int
	// Changed counts those whose stored plan changed.
	Changed int
	// Paused counts the running interruptible jobs whose workers it asked
	// to pause them.
	Paused int
}

// planState is the state a job with plan p is in: planned, or pending
// while p holds it (no window under its price cap).
func planState(p *greenq.Plan) greenq.State {
	if p != nil && p.Held {
		return greenq.StatePending
	}
	return greenq.StatePlanned
}
