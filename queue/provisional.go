package queue

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/refresh"
	"github.com/greenq/greenq/planning"
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

// submitRegions returns the configured regions as a submit's provisional
// plan sees them: each with its series as cached (seriesCache), without
// capacity.
func (s *Store) submitRegions(ctx context.Context, now time.Time) ([]planning.Region, error) {
	out := make([]planning.Region, len(s.regions))
	for i, r := range s.regions {
		series, found, err := s.cachedSeries(ctx, r.Name, now)
		if err != nil {
			return nil, err
		}
		out[i] = regionFacts(r, series, found)
	}
	return out, nil
}

// roundRegions returns the regions as the leader's round sees them: live
// capacity and worker sizes (Regions), the released and running jobs
// through active (read only when some region has a capacity: capacity 0 is
// unbounded) and each region's stored series.
func (s *Store) roundRegions(ctx context.Context, active *jobCache) ([]planning.Region, error) {
	regions, sizes, err := s.liveRegions(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []*greenq.Job
	if slices.ContainsFunc(regions, func(r greenq.Region) bool { return r.Capacity > 0 }) {
		if jobs, err = s.activeCached(ctx, active); err != nil {
			return nil, err
		}
	}
	out := make([]planning.Region, len(regions))
	for i, r := range regions {
		series, err := s.Series(ctx, r.Name)
		if err != nil && !errors.Is(err, greenq.ErrNotFound) {
			return nil, err
		}
		f := regionFacts(r, series, err == nil)
		f.Live, f.Workers, f.Active = true, sizes[r.Name], jobs
		out[i] = f
	}
	return out, nil
}

// regionFacts is region r with its series as the planning adapter takes
// them, naming the fallback the series is, if any.
func regionFacts(r greenq.Region, series forecast.Series, found bool) planning.Region {
	return planning.Region{Config: r, Series: series, HasSeries: found, Fallback: fallbackOf(series, found)}
}

// fallbackOf names the forecast refresh's fallback a series is (no signal,
// a provider's last good series, greenq's own forecaster), or "" for a
// provider's own series. No series at all is refresh.SourceNone.
func fallbackOf(series forecast.Series, found bool) string {
	src := series.Source
	switch {
	case !found || src == "":
		return refresh.SourceNone
	case src == refresh.SourceNone, strings.HasSuffix(src, refresh.SuffixLastGood), strings.HasPrefix(src, refresh.SourceForecaster):
		return src
	}
	return ""
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
// planning round.
func (s *Store) planBatch(ctx context.Context, batch []*planWait) {
	now := batch[0].now
	n := 0
	for _, w := range batch {
		if w.now.After(now) {
			now = w.now
		}
		n += len(w.jobs)
	}
	regions, err := s.submitRegions(ctx, now)
	if err != nil {
		s.log.Debug("provisional plan skipped", "err", err)
		return
	}
	jobs := make([]*greenq.Job, 0, n)
	for _, w := range batch {
		jobs = append(jobs, w.jobs...)
	}
	for i, p := range s.plan.Plan(now, jobs, regions) {
		if !planning.Placed(p) {
			continue
		}
		p.Provisional = true
		jobs[i].Plan = &p
	}
}
