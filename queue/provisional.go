package queue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// seriesCacheTTL bounds how stale a series cached for provisional plans may
// be; another replica's new series reaches this one within it.
const seriesCacheTTL = 10 * time.Second

// seriesCache keeps recently read series for provisional plans at submit,
// so a burst of submissions does not read and decode every region's series
// each time.
type seriesCache struct {
	mu      sync.Mutex
	entries map[string]cachedSeries
}

type cachedSeries struct {
	series forecast.Series
	found  bool
	at     time.Time
}

// cachedSeries returns region's series, read at most seriesCacheTTL ago.
func (s *Store) cachedSeries(ctx context.Context, region string, now time.Time) (forecast.Series, bool, error) {
	s.cache.mu.Lock()
	e, ok := s.cache.entries[region]
	s.cache.mu.Unlock()
	if ok && now.Sub(e.at) < seriesCacheTTL && !now.Before(e.at) {
		return e.series, e.found, nil
	}
	series, err := s.Series(ctx, region)
	found := err == nil
	if err != nil && !errors.Is(err, greenq.ErrNotFound) {
		return forecast.Series{}, false, err
	}
	s.cache.mu.Lock()
	if s.cache.entries == nil {
		s.cache.entries = map[string]cachedSeries{}
	}
	s.cache.entries[region] = cachedSeries{series: series, found: found, at: now}
	s.cache.mu.Unlock()
	return series, found, nil
}

func (s *Store) forgetSeries(region string) {
	s.cache.mu.Lock()
	delete(s.cache.entries, region)
	s.cache.mu.Unlock()
}

// policyRegions returns the configured regions as the planner sees them:
// price schedule, PUE, series (a region with none gets an empty one, which
// the policy counts at the other regions' mean), the largest job a worker
// there can run (configured, and when live, the largest worker seen within
// WorkerMemory) and, when live, the live workers' sizes (capacity per
// worker, so a job only counts room on workers it fits) and the GPUs
// released and running jobs hold.
func (s *Store) policyRegions(ctx context.Context, now time.Time, slot time.Duration, live bool, cached bool, activeCache *jobCache) ([]policy.Region, error) {
	regions := s.regions
	var active []*greenq.Job
	var sizes map[string][]int
	if live {
		var err error
		if regions, sizes, err = s.liveRegions(ctx); err != nil {
			return nil, err
		}
		// Busy GPUs only matter in a pool of known size (capacity 0 is
		// unbounded), so the released and running jobs are read only then.
		if slices.ContainsFunc(regions, func(r greenq.Region) bool { return r.Capacity > 0 }) {
			if activeCache != nil {
				active, err = s.activeCached(ctx, activeCache)
			} else {
				active, err = s.Active(ctx)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]policy.Region, 0, len(regions))
	for _, r := range regions {
		pr := policy.Region{Name: r.Name, PUE: r.PUE, Price: policy.PriceSchedule{USDPerGPUHour: r.GPUPriceUSDPerHour},
			MaxJobGPUs: max(r.MaxGPUsPerWorker, 0)}
		for _, st := range r.PriceSchedule {
			pr.Price.TimeOfUse = append(pr.Price.TimeOfUse, policy.TimeOfUsePrice{FromHour: st.FromHour, ToHour: st.ToHour, USDPerGPUHour: st.USDPerGPUHour})
		}
		if live {
			pr.Capacity, pr.Workers = r.Capacity, sizes[r.Name]
			pr.Busy = busy(active, r.Name, now, slot)
		}
		var (
			series forecast.Series
			found  bool
			err    error
		)
		if cached {
			series, found, err = s.cachedSeries(ctx, r.Name, now)
		} else {
			series, err = s.Series(ctx, r.Name)
			found = err == nil
			if errors.Is(err, greenq.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			return nil, err
		}
		if !found {
			series = forecast.Series{Region: r.Name, Signal: forecast.SignalAverage}
		}
		pr.Series = series
		out = append(out, pr)
	}
	return out, nil
}

// planBatcher folds the provisional plans of concurrent submissions into
// one policy.Plan call. Without capacity limits the policy plans every job
// on its own, so a batch gives each job the plan it would get alone (at
// the batch's now, at most a few milliseconds later than its own), while
// the series grid and the planner's scratch space are built once per batch
// instead of once per submission.
type planBatcher struct {
	mu      sync.Mutex
	running bool        // a batch is being planned
	queue   []*planWait // submissions waiting for the next batch
}

// planWait is one submission's jobs waiting in planBatcher.
type planWait struct {
	now  time.Time
	jobs []*greenq.Job
	// lead receives true when this submission is to plan the next batch,
	// false when another's batch planned its jobs.
	lead chan bool
}

// provisionalPlans gives freshly submitted jobs a plan at once, so a
// client sees where and when its job is expected to run right after
// submitting. It is the production planner over cached series without
// capacity; the job stays pending, is not scheduled for release, and the
// leader's next round (which the submit triggers) replaces the plan with a
// capacity-aware one. A failure only leaves the jobs without a plan.
//
// Submissions arriving while a batch is being planned wait and go into the
// next batch together, which the first of them plans (planBatcher).
func (s *Store) provisionalPlans(ctx context.Context, now time.Time, jobs []*greenq.Job) {
	if len(s.regions) == 0 || len(jobs) == 0 {
		return
	}
	b := &s.batcher
	w := &planWait{now: now, jobs: jobs, lead: make(chan bool, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, w)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if !lead && !<-w.lead {
		return
	}
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	// One submitter's cancelled request must not leave the others unplanned.
	s.planBatch(context.WithoutCancel(ctx), batch)
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].lead <- true // running stays set: the next batch's leader takes over
	} else {
		b.running = false
	}
	b.mu.Unlock()
	for _, o := range batch {
		if o != w {
			o.lead <- false
		}
	}
}

// planBatch makes the provisional plans of every job in batch in one
// policy.Plan call.
func (s *Store) planBatch(ctx context.Context, batch []*planWait) {
	now := batch[0].now
	n := 0
	for _, w := range batch {
		if w.now.After(now) {
			now = w.now
		}
		n += len(w.jobs)
	}
	cfg := s.policy.WithDefaults()
	regions, err := s.policyRegions(ctx, now, cfg.Slot, false, true, nil)
	if err != nil {
		s.log.Debug("provisional plan skipped", "err", err)
		return
	}
	in := policy.Input{Now: now, Regions: regions, Config: cfg, Jobs: make([]policy.Job, 0, n)}
	jobs := make([]*greenq.Job, 0, n)
	for _, w := range batch {
		for _, j := range w.jobs {
			in.Jobs = append(in.Jobs, toPolicyJob(j))
			jobs = append(jobs, j)
		}
	}
	res := policy.Plan(in)
	for i, a := range res.Assignments {
		if a.Region == "" && !a.Held {
			continue
		}
		p := toPlan(a, now)
		p.Provisional = true
		jobs[i].Plan = &p
	}
}
