package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/queue"
)

// RestateStore is what a Restater reads and writes: the jobs filed for
// restating, their records and the regions' stored series.
type RestateStore interface {
	// RestateCandidates returns up to n jobs filed for restating that
	// finished at or after since, oldest first.
	RestateCandidates(ctx context.Context, since time.Time, n int64) ([]*greenq.Job, error)
	// Restate replaces a finished job's receipt with what restate returns
	// (nil: unchanged), as a compare-and-set.
	Restate(ctx context.Context, id string, restate func(*greenq.Job) *greenq.Receipt) (*greenq.Job, error)
	// Series returns a region's stored series.
	Series(ctx context.Context, region string) (forecast.Series, error)
}

// RestaterConfig configures a Restater.
type RestaterConfig struct {
	// Store holds the jobs and series (required).
	Store RestateStore
	// Regions are the server's configured regions, whose PUE the restated
	// receipts use, as workers do; a region not listed has PUE 1.
	Regions []greenq.Region
	// Window is how long after a job finished its receipt waits for the
	// provider's actuals; after it, the receipt keeps the forecast it
	// rests on, labelled so. Default 7 days.
	Window time.Duration
	// Interval is how often a pass runs besides Trigger. Default 15m.
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives what was restated. Default: discard.
	Logger *slog.Logger
}

// Restater restates receipts written from forecast intensities once the
// provider's actuals for the run's hours are in the stored series: it
// recomputes intensity, emissions and savings from them, keeps the figure
// at finish as GCO2AtFinish and sets RestatedAt. Energy, GPU-hours and
// cost are what was measured and do not change. The server runs it after
// each forecast refresh.
type Restater struct {
	cfg     RestaterConfig
	regions map[string]greenq.Region
	log     *slog.Logger
	trigger chan struct{}
}

// NewRestater returns a Restater for cfg.
func NewRestater(cfg RestaterConfig) (*Restater, error) {
	if cfg.Store == nil {
		return nil, errors.New("new restater: Store is nil")
	}
	if cfg.Window <= 0 {
		cfg.Window = 7 * 24 * time.Hour
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Restater{cfg: cfg, regions: map[string]greenq.Region{}, log: cfg.Logger.With("component", "restate"),
		trigger: make(chan struct{}, 1)}
	for _, reg := range cfg.Regions {
		r.regions[reg.Name] = reg
	}
	return r, nil
}

// Trigger asks for a pass soon (a series was refreshed).
func (r *Restater) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run makes a pass at start, on each Trigger and every Interval until ctx
// ends; it returns nil then.
func (r *Restater) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.RestateOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("restate receipts", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.trigger:
		}
	}
}

// restateBatch bounds the jobs one pass reads.
const restateBatch = 1000

// RestateOnce restates every receipt filed for restating whose run's hours
// now have actuals, and returns how many it restated.
func (r *Restater) RestateOnce(ctx context.Context) (int, error) {
	now := r.cfg.Now()
	jobs, err := r.cfg.Store.RestateCandidates(ctx, now.Add(-r.cfg.Window), restateBatch)
	if err != nil {
		return 0, err
	}
	series := map[string]forecast.Series{}
	read := map[string]bool{}
	n := 0
	for _, j := range jobs {
		for _, name := range receiptRegions(j) {
			if read[name] {
				continue
			}
			read[name] = true
			s, err := r.cfg.Store.Series(ctx, name)
			switch {
			case errors.Is(err, greenq.ErrNotFound):
			case err != nil:
				return n, fmt.Errorf("restate: %w", err)
			default:
				series[name] = s
			}
		}
		restated := false
		_, err := r.cfg.Store.Restate(ctx, j.ID, func(cur *greenq.Job) *greenq.Receipt {
			rc, ok := RestateReceipt(cur, series, r.regions, now)
			if !ok {
				return nil
			}
			restated = true
			return &rc
		})
		if err != nil && !errors.Is(err, greenq.ErrNotFound) {
			return n, err
		}
		if restated {
			n++
			r.log.Info("receipt restated from actuals", "job", j.ID)
		}
	}
	return n, nil
}

// receiptRegions lists the regions a receipt of j reads series of: where
// it ran and its home region.
func receiptRegions(j *greenq.Job) []string {
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		if s != "" {
			out = append(out, s)
		}
	}
	for _, s := range j.Segments {
		add(s.Region)
	}
	add(j.HomeRegion)
	if j.Plan != nil {
		add(j.Plan.Baseline.Region)
	}
	return out
}

// RestateReceipt recomputes finished job j's receipt from series once
// every one of its run segments is covered by actual points of its
// region's series; ok is false while some hour still has only a forecast
// (or the job has no receipt or no recorded segments). Intensity,
// emissions, savings and SCI are recomputed, with the PUE of regions;
// what was measured stays: the energy and its sources, the GPU readings,
// run time, GPU-hours, cost and the embodied emissions that go with them.
// The figure at finish is kept as GCO2AtFinish and RestatedAt is set to
// now.
func RestateReceipt(j *greenq.Job, series map[string]forecast.Series, regions map[string]greenq.Region, now time.Time) (greenq.Receipt, bool) {
	old := j.Receipt
	if old == nil || len(j.Segments) == 0 || !old.RestsOnForecast() {
		return greenq.Receipt{}, false
	}
	segs := make([]SegmentEnergy, 0, len(j.Segments))
	for _, s := range j.Segments {
		sr, ok := series[s.Region]
		if !ok || !actualCovers(sr, s.Start, s.End) {
			return greenq.Receipt{}, false
		}
		segs = append(segs, SegmentEnergy{Region: s.Region, Start: s.Start, End: s.End, OtherKWh: s.EnergyKWh})
	}
	rc := ComputeReceipt(ReceiptInput{
		Segments: segs, Series: series, Regions: regions, Plan: j.Plan, Home: j.HomeRegion, SubmittedAt: j.SubmittedAt,
		GPUs:           j.GPUs,
		FunctionalUnit: old.FunctionalUnit, FunctionalUnits: old.FunctionalUnits,
		EnergySource: old.EnergySource, CPUEnergySource: old.CPUEnergySource, EnergyMeter: old.EnergyMeter,
		GPUModel: old.GPUModel, GPUUtilizationPct: old.GPUUtilizationPct, GPUMemoryUsedMiB: old.GPUMemoryUsedMiB,
		GPUUtilizationSamples: old.GPUUtilizationSamples,
	})
	// What was measured stays: the energy's split (the segments carry only
	// its total), the run time and what it cost, and the embodied share
	// that goes with the GPU-hours.
	rc.GPUEnergyKWh, rc.CPUEnergyKWh, rc.RAMEnergyKWh = old.GPUEnergyKWh, old.CPUEnergyKWh, old.RAMEnergyKWh
	rc.DurationS, rc.GPUHours, rc.CostUSD, rc.PriceUSDPerGPUHour = old.DurationS, old.GPUHours, old.CostUSD, old.PriceUSDPerGPUHour
	rc.EmbodiedGCO2 = old.EmbodiedGCO2
	units := rc.FunctionalUnits
	if units <= 0 {
		units = 1
	}
	rc.SCI = (rc.GCO2 + rc.EmbodiedGCO2) / units
	at := old.GCO2
	if old.GCO2AtFinish != nil {
		at = *old.GCO2AtFinish
	}
	rc.GCO2AtFinish = &at
	t := now.UTC()
	rc.RestatedAt = &t
	return rc, true
}

// actualCovers reports whether s's actual points cover [from, to) whole.
func actualCovers(s forecast.Series, from, to time.Time) bool {
	if !to.After(from) {
		return true
	}
	at := from
	for _, p := range s.Points {
		if !p.End.After(at) {
			continue
		}
		if p.Start.After(at) || p.Kind != forecast.KindActual {
			return false
		}
		at = p.End
		if !at.Before(to) {
			return true
		}
	}
	return false
}

var _ RestateStore = (*queue.Store)(nil)
