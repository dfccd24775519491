package queue

import (
	"context"
	"errors"
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
// the policy counts at the other regions' mean) and, when active is given,
// live capacity and the GPUs released and running jobs hold.
func (s *Store) policyRegions(ctx context.Context, now time.Time, slot time.Duration, live bool, cached bool) ([]policy.Region, error) {
	regions := s.regions
	var active []*greenq.Job
	if live {
		var err error
		if regions, err = s.Regions(ctx); err != nil {
			return nil, err
		}
		if active, err = s.Active(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]policy.Region, 0, len(regions))
	for _, r := range regions {
		pr := policy.Region{Name: r.Name, PUE: r.PUE, Price: policy.PriceSchedule{USDPerGPUHour: r.GPUPriceUSDPerHour}}
		for _, st := range r.PriceSchedule {
			pr.Price.TimeOfUse = append(pr.Price.TimeOfUse, policy.TimeOfUsePrice{FromHour: st.FromHour, ToHour: st.ToHour, USDPerGPUHour: st.USDPerGPUHour})
		}
		if live {
			pr.Capacity = r.Capacity
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

// provisionalPlans gives freshly submitted jobs a plan at once, so a
// client sees where and when its job is expected to run right after
// submitting. It is the production planner over cached series without
// capacity; the job stays pending, is not scheduled for release, and the
// leader's next round (which the submit triggers) replaces the plan with a
// capacity-aware one. A failure only leaves the jobs without a plan.
func (s *Store) provisionalPlans(ctx context.Context, now time.Time, jobs []*greenq.Job) {
	if len(s.regions) == 0 {
		return
	}
	cfg := s.policy.WithDefaults()
	regions, err := s.policyRegions(ctx, now, cfg.Slot, false, true)
	if err != nil {
		s.log.Debug("provisional plan skipped", "err", err)
		return
	}
	in := policy.Input{Now: now, Regions: regions, Config: cfg, Jobs: make([]policy.Job, len(jobs))}
	for i, j := range jobs {
		in.Jobs[i] = toPolicyJob(j)
	}
	res := policy.Plan(in)
	for i, a := range res.Assignments {
		if a.Region == "" {
			continue
		}
		p := toPlan(a, now)
		p.Provisional = true
		jobs[i].Plan = &p
	}
}
