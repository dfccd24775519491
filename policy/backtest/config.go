package backtest

import (
	"time"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// Forecaster predicts a region's intensity from its past alone; the
// production forecast.Forecaster satisfies it.
type Forecaster interface {
	Forecast(history forecast.Series, from time.Time, horizon time.Duration) forecast.Series
}

// Config is one back-test: the flags of `greenq simulate` plus in-memory
// alternatives for tests and benchmarks. Where both a file and its
// in-memory field are set, the in-memory field wins.
type Config struct {
	// CarbonDir holds one <region>.csv per region (--carbon).
	CarbonDir string
	// Carbon is the actual series per region, instead of CarbonDir.
	Carbon map[string]forecast.Series
	// WorkloadFile is the workload CSV (--workload).
	WorkloadFile string
	// Jobs is the workload, instead of WorkloadFile.
	Jobs []Job
	// ForecastsDir holds real forecast vintages per region (--forecasts).
	// Regions without a file use the forecaster.
	ForecastsDir string
	// Forecasts are the vintages per region, instead of ForecastsDir.
	Forecasts map[string][]forecast.Series
	// Capacity is GPUs per region (--capacity); a region not named is
	// unbounded. Any capacity makes the oracle a lower bound.
	Capacity map[string]int
	// PUE per region (--pue). Default 1.
	PUE map[string]float64
	// ForecastNoise, when > 0, makes the planner see the actual series plus
	// Gaussian noise of σ = ForecastNoise × the series' mean instead of a
	// forecast (--forecast-noise; for comparison with published studies
	// only, as it reads the future).
	ForecastNoise float64
	// NoiseSeed seeds the noise. Default 1.
	NoiseSeed uint64
	// Tick is the re-plan interval of pending jobs, aligned to multiples
	// of Tick in UTC. Forecasters run at each tick too, as the server's
	// forecast refresh does: a job submitted between ticks is planned at once
	// on the forecast issued at the last tick (and the latest vintage issued
	// by its submit). Default 1h; negative: plan each job once, at submit,
	// on a forecast issued then.
	Tick time.Duration
	// HistoryWindow is how much of the past the forecaster is given at
	// each forecast. Default 28 days (the production forecaster looks back
	// 15 days); negative: all of it.
	HistoryWindow time.Duration
	// Planner configures policy.Plan; zero fields take its defaults, the
	// server's.
	Planner policy.Config
	// Forecaster extends history into the future at each decision.
	// Default forecast.Forecaster{}.
	Forecaster Forecaster
	// BoundIterations is the number of subgradient steps of the oracle's
	// lower bound under capacity limits. Default 30.
	BoundIterations int
	// PlacementsFile, when set, receives the greenq placements
	// (--placements).
	PlacementsFile string
	// OnDecision, when set, is called for every planning decision, in
	// time order.
	OnDecision func(Decision)
	// OnReferenceDecision, when set, is called for every run the reference
	// policy decides on (a start, or an hour of an interruptible job), job
	// by job, each job's in time order.
	OnReferenceDecision func(Decision)
	// Clock measures planner_seconds only. Default time.Now.
	Clock func() time.Time

	// runSegments runs every segment of an interruptible job to its end,
	// as the server did before its planner re-decided running jobs
	// (planning.Planner.Pauses); by default a running interruptible job is
	// re-planned at every tick inside its segment once it has run
	// Planner.MinSegment of it, and paused there when its plan no longer
	// goes on at once (unbounded capacity only). It is here to measure
	// what re-deciding is worth (BenchmarkTuneWorkingHours).
	runSegments bool
}

// Decision is one planner output for one job at one decision time.
type Decision struct {
	At       time.Time
	JobID    string
	Region   string
	Segments []policy.Window
	Urgent   bool
	// Fallback is set when the planner's answer was unusable (outside the
	// allowed regions, before now, of the wrong length) and the job was run
	// at once instead.
	Fallback bool
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.NoiseSeed == 0 {
		c.NoiseSeed = 1
	}
	if c.Tick == 0 {
		c.Tick = time.Hour
	}
	if c.HistoryWindow == 0 {
		c.HistoryWindow = 28 * 24 * time.Hour
	}
	if c.Forecaster == nil {
		c.Forecaster = forecast.Forecaster{}
	}
	if c.BoundIterations <= 0 {
		c.BoundIterations = 30
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}
