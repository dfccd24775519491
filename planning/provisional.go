package planning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/refresh"
)

// SeriesReader reads a region's stored carbon series; none stored wraps
// greenq.ErrNotFound. *queue.Store implements it.
type SeriesReader interface {
	Series(ctx context.Context, region string) (forecast.Series, error)
}

// ReadRegion returns region r's facts without capacity, its series read
// through src (none stored is no error: the region then has no series).
func ReadRegion(ctx context.Context, src SeriesReader, r greenq.Region) (Region, error) {
	series, err := src.Series(ctx, r.Name)
	if err != nil && !errors.Is(err, greenq.ErrNotFound) {
		return Region{}, fmt.Errorf("read series of %s: %w", r.Name, err)
	}
	found := err == nil
	return Region{Config: r, Series: series, HasSeries: found, Fallback: fallbackOf(series, found)}, nil
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

// seriesCacheTTL bounds how stale a series cached for provisional plans may
// be; another replica's new series reaches this one within it.
const seriesCacheTTL = 10 * time.Second

// seriesCache keeps recently read series for provisional plans, so a burst
// of submissions does not read and decode every region's series each time.
type seriesCache struct {
	src     SeriesReader
	mu      sync.Mutex
	entries map[string]cachedSeries
}

type cachedSeries struct {
	series forecast.Series
	err    error // nil or greenq.ErrNotFound
	at     time.Time
}

// read returns region's series as src answered at most seriesCacheTTL
// before now.
func (c *seriesCache) read(ctx context.Context, region string, now time.Time) (forecast.Series, error) {
	c.mu.Lock()
	e, ok := c.entries[region]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < seriesCacheTTL && !now.Before(e.at) {
		return e.series, e.err
	}
	series, err := c.src.Series(ctx, region)
	if err != nil && !errors.Is(err, greenq.ErrNotFound) {
		return forecast.Series{}, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cachedSeries{}
	}
	c.entries[region] = cachedSeries{series: series, err: err, at: now}
	c.mu.Unlock()
	return series, err
}

// cachedAt is c read at now, as a SeriesReader.
type cachedAt struct {
	c   *seriesCache
	now time.Time
}

func (r cachedAt) Series(ctx context.Context, region string) (forecast.Series, error) {
	return r.c.read(ctx, region, r.now)
}

// Provisional gives freshly submitted jobs a plan at once, so a client
// sees where and when its job is expected to run right after submitting.
// It is the production planner over the configured regions and their
// series (cached for seriesCacheTTL) without capacity; the job stays
// pending, is not scheduled for release, and the leader's next round
// replaces the plan with a capacity-aware one. It is safe for concurrent
// use.
type Provisional struct {
	plan    *Planner
	regions []greenq.Region
	series  seriesCache
	log     *slog.Logger
	batch   planBatcher
}

// Provisional returns the provisional planner over regions, reading their
// series from src; log receives why a plan was skipped.
func (p *Planner) Provisional(regions []greenq.Region, src SeriesReader, log *slog.Logger) *Provisional {
	return &Provisional{plan: p, regions: regions, series: seriesCache{src: src}, log: log}
}

// Forget drops region's cached series (a new one was stored).
func (pv *Provisional) Forget(region string) {
	pv.series.mu.Lock()
	delete(pv.series.entries, region)
	pv.series.mu.Unlock()
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

// Plan sets the provisional plan (Plan.Provisional) of each of jobs,
// submitted at now, that has a region to run in. A failure only leaves the
// jobs without a plan.
//
// Submissions arriving while a batch is being planned wait and go into the
// next batch together, which the first of them plans (planBatcher).
func (pv *Provisional) Plan(ctx context.Context, now time.Time, jobs []*greenq.Job) {
	if len(pv.regions) == 0 || len(jobs) == 0 {
		return
	}
	b := &pv.batch
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
	pv.planBatch(context.WithoutCancel(ctx), batch)
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
func (pv *Provisional) planBatch(ctx context.Context, batch []*planWait) {
	now := batch[0].now
	n := 0
	for _, w := range batch {
		if w.now.After(now) {
			now = w.now
		}
		n += len(w.jobs)
	}
	regions := make([]Region, len(pv.regions))
	for i, r := range pv.regions {
		f, err := ReadRegion(ctx, cachedAt{&pv.series, now}, r)
		if err != nil {
			pv.log.Debug("provisional plan skipped", "err", err)
			return
		}
		regions[i] = f
	}
	jobs := make([]*greenq.Job, 0, n)
	for _, w := range batch {
		jobs = append(jobs, w.jobs...)
	}
	for i, p := range pv.plan.Plan(now, jobs, regions) {
		if !Placed(p) {
			continue
		}
		p.Provisional = true
		jobs[i].Plan = &p
	}
}
