package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/planning"
	"github.com/redis/go-redis/v9"
)

// Heartbeat announces worker w and what it offers for ttl; a worker that
// stops beating drops out of Workers and of its region's live capacity when
// ttl runs out. SeenAt is set to now.
func (s *Store) Heartbeat(ctx context.Context, w WorkerInfo, ttl time.Duration) error {
	switch {
	case w.ID == "":
		return greenq.Invalid("id", "a worker needs an id")
	case w.Region == "":
		return greenq.Invalid("region", "a worker needs a region")
	case w.GPUs < 0 || w.Busy < 0:
		return greenq.Invalid("gpus", "must not be negative")
	case ttl <= 0:
		return greenq.Invalid("ttl", "must be positive, got %s", ttl)
	}
	w.SeenAt = s.now().UTC()
	js, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("heartbeat: encode: %w", err)
	}
	err = heartbeatScript.Run(ctx, s.rdb, []string{s.k.workers(), s.k.workersExpiry(), s.k.workersSeen()}, w.ID, js, ttl.Milliseconds()).Err()
	return redisErr("heartbeat", err)
}

// WorkerMemory is how long a worker's size counts towards its region's
// largest worker after its last heartbeat, so that a submission is not
// refused while the region's big worker restarts.
const WorkerMemory = 7 * 24 * time.Hour

// largestWorkers returns, per configured region, the most GPUs one worker
// offers: the larger of the region's MaxGPUsPerWorker and the largest
// worker that heartbeat there within WorkerMemory (0: nothing known). It
// forgets workers older than that.
func (s *Store) largestWorkers(ctx context.Context) (map[string]int, error) {
	vals, err := s.rdb.HGetAll(ctx, s.k.workersSeen()).Result()
	if err != nil {
		return nil, redisErr("read worker sizes", err)
	}
	out := make(map[string]int, len(s.regions))
	for _, r := range s.regions {
		out[r.Name] = max(r.MaxGPUsPerWorker, 0)
	}
	now := s.now()
	var old []string
	for id, js := range vals {
		var w WorkerInfo
		if err := json.Unmarshal([]byte(js), &w); err != nil || now.Sub(w.SeenAt) > WorkerMemory {
			old = append(old, id)
			continue
		}
		if m, ok := out[w.Region]; ok {
			out[w.Region] = max(m, w.JobGPUs())
		}
	}
	if len(old) > 0 {
		// Best effort: a worker that beats again meanwhile is rewritten.
		_ = s.rdb.HDel(ctx, s.k.workersSeen(), old...).Err()
	}
	return out, nil
}

// checkFits refuses a job of gpus GPUs allowed in regions (empty: all)
// when it needs more than the largest worker of every one of them offers
// (largestWorkers; greenq.CheckFitsWorkers). A region nothing is known
// about takes any size, so a job is refused only where greenq knows it
// cannot run.
func (s *Store) checkFits(ctx context.Context, gpus int, regions []string) error {
	if gpus <= 1 || len(s.names) == 0 {
		return nil
	}
	largest, err := s.largestWorkers(ctx)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	known := make([]greenq.Region, len(s.regions))
	for i, r := range s.regions {
		known[i] = greenq.Region{Name: r.Name, MaxGPUsPerWorker: largest[r.Name]}
	}
	return greenq.CheckFitsWorkers(gpus, regions, known)
}

// Workers returns the workers whose heartbeat is still live, by region and
// id.
func (s *Store) Workers(ctx context.Context) ([]WorkerInfo, error) {
	vals, err := workersScript.Run(ctx, s.rdb, []string{s.k.workers(), s.k.workersExpiry()}).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("list workers", err)
	}
	out := make([]WorkerInfo, 0, len(vals))
	for _, v := range vals {
		js, ok := v.(string)
		if !ok {
			continue
		}
		var w WorkerInfo
		if err := json.Unmarshal([]byte(js), &w); err != nil {
			s.log.Warn("skip unreadable worker heartbeat", "err", err)
			continue
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Region != out[j].Region {
			return out[i].Region < out[j].Region
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Regions returns the configured regions with their live Capacity (GPUs
// of live workers) and Workers filled in, and MaxGPUsPerWorker raised to
// the largest worker seen within WorkerMemory.
func (s *Store) Regions(ctx context.Context) ([]greenq.Region, error) {
	out, _, err := s.liveRegions(ctx)
	return out, err
}

// liveRegions is Regions with the GPUs of each live worker, by region.
func (s *Store) liveRegions(ctx context.Context) ([]greenq.Region, map[string][]int, error) {
	ws, err := s.Workers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("regions: %w", err)
	}
	largest, err := s.largestWorkers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("regions: %w", err)
	}
	sizes := map[string][]int{}
	out := make([]greenq.Region, len(s.regions))
	for i, r := range s.regions {
		r.Capacity, r.Workers = 0, 0
		r.PriceSchedule = append([]greenq.PriceStep(nil), r.PriceSchedule...)
		for _, w := range ws {
			if w.Region == r.Name {
				r.Capacity += w.GPUs
				r.Workers++
				sizes[r.Name] = append(sizes[r.Name], w.GPUs)
				r.MaxGPUsPerWorker = max(r.MaxGPUsPerWorker, w.JobGPUs())
			}
		}
		r.MaxGPUsPerWorker = max(r.MaxGPUsPerWorker, largest[r.Name])
		out[i] = r
	}
	return out, sizes, nil
}

// PutSeries stores a region's normalised carbon series for every replica
// and worker, replacing the previous one, and asks the planner to re-plan.
func (s *Store) PutSeries(ctx context.Context, series forecast.Series) error {
	if series.Region == "" {
		return greenq.Invalid("region", "a series needs a region")
	}
	if err := series.Validate(); err != nil {
		return fmt.Errorf("put series: %w", err)
	}
	js, err := json.Marshal(series)
	if err != nil {
		return fmt.Errorf("put series: encode: %w", err)
	}
	if err := s.rdb.Set(ctx, s.k.series(series.Region), js, 0).Err(); err != nil {
		return redisErr("put series", err)
	}
	s.prov.Forget(series.Region)
	s.wake(ctx, wakePlan)
	return nil
}

// Series returns the stored series of region; none stored wraps
// greenq.ErrNotFound.
func (s *Store) Series(ctx context.Context, region string) (forecast.Series, error) {
	js, err := s.rdb.Get(ctx, s.k.series(region)).Bytes()
	if errors.Is(err, redis.Nil) {
		return forecast.Series{}, fmt.Errorf("series of region %q: %w", region, greenq.ErrNotFound)
	}
	if err != nil {
		return forecast.Series{}, redisErr("read series", err)
	}
	var out forecast.Series
	if err := json.Unmarshal(js, &out); err != nil {
		return forecast.Series{}, fmt.Errorf("decode series of region %q: %w", region, err)
	}
	return out, nil
}

// Measurement is what earlier successful runs of jobs with one name
// measured; Submit uses it as the estimate of a job that gives none.
type Measurement struct {
	Name string `json:"name"`
	// Runs counts the successful runs measured.
	Runs int `json:"runs"`
	// DurationS is the run time in seconds, a mean weighted toward the
	// latest runs.
	DurationS float64 `json:"duration_s"`
	// EnergyKWh is the IT energy of a run (before PUE), weighted likewise;
	// 0 when no run reported energy.
	EnergyKWh float64 `json:"energy_kwh"`
	// GPUs is the GPU count of the latest run.
	GPUs      int       `json:"gpus"`
	UpdatedAt time.Time `json:"updated_at"`
}

// measurementWindow is how many recent runs the mean follows.
const measurementWindow = 10

// Measurement returns what tenant's successful runs of jobs named name
// measured; false when none did. Measurements are per tenant, so one
// tenant's job names neither inform nor reveal another's.
func (s *Store) Measurement(ctx context.Context, tenant, name string) (Measurement, bool, error) {
	js, err := s.rdb.Get(ctx, s.k.measurement(tenant+"/"+name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Measurement{}, false, nil
	}
	if err != nil {
		return Measurement{}, false, redisErr("read measurement", err)
	}
	var m Measurement
	if err := json.Unmarshal(js, &m); err != nil {
		return Measurement{}, false, fmt.Errorf("decode measurement %q: %w", name, err)
	}
	return m, true, nil
}

// recordMeasurement folds a succeeded job's run into its name's
// measurement. Two jobs of one name finishing at the same instant may lose
// one sample; the estimate tolerates that.
func (s *Store) recordMeasurement(ctx context.Context, j *greenq.Job) error {
	d := measuredDuration(j)
	if d <= 0 {
		return nil
	}
	m, _, err := s.Measurement(ctx, j.Tenant, j.Name)
	if err != nil {
		return err
	}
	var kwh float64
	if j.Receipt != nil {
		kwh = j.Receipt.EnergyKWh
	}
	m.Name = j.Name
	m.Runs++
	a := 1 / math.Min(float64(m.Runs), measurementWindow)
	m.DurationS += a * (d.Seconds() - m.DurationS)
	if kwh > 0 {
		if m.EnergyKWh == 0 {
			m.EnergyKWh = kwh
		} else {
			m.EnergyKWh += a * (kwh - m.EnergyKWh)
		}
	}
	m.GPUs = j.GPUs
	m.UpdatedAt = s.now().UTC()
	js, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode measurement: %w", err)
	}
	return redisErr("write measurement", s.rdb.Set(ctx, s.k.measurement(j.Tenant+"/"+j.Name), js, 0).Err())
}

// measuredDuration is how long j really ran: its receipt's duration, else
// its segments, else its run's start to finish.
func measuredDuration(j *greenq.Job) time.Duration {
	if j.Receipt != nil && j.Receipt.DurationS > 0 {
		return time.Duration(j.Receipt.DurationS * float64(time.Second))
	}
	if d := planning.DoneDuration(j); d > 0 {
		return d
	}
	if j.Run != nil && j.Run.FinishedAt != nil {
		return j.Run.FinishedAt.Sub(j.Run.StartedAt)
	}
	return 0
}

// workerLive reports whether worker id's heartbeat has not expired, on
// Redis's clock.
func (s *Store) workerLive(ctx context.Context, id string) (bool, error) {
	live, err := workerLiveScript.Run(ctx, s.rdb, []string{s.k.workersExpiry()}, id).Int()
	if err != nil {
		return false, redisErr("check worker", err)
	}
	return live == 1, nil
}
