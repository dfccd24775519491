package policy

import (
	"time"

	"github.com/greenq/greenq/forecast"
)

// Job is what the planner needs to know about one pending job.
type Job struct {
	ID    string
	Group string // sweep group; trials of one group are planned together
	GPUs  int
	// Duration is the expected run time.
	Duration time.Duration
	// PowerW is the expected draw per GPU in watts; 0 means Config.DefaultPowerW.
	PowerW float64
	// Earliest is when the job may start at the soonest (its submit time);
	// the planner never starts a job before max(Earliest, Input.Now).
	Earliest time.Time
	Deadline time.Time
	// Regions allowed; empty means every region.
	Regions []string
	// Home is the region "run now" means: the baseline runs there from
	// the earliest start. Empty, or a name not in Input.Regions, means the
	// first allowed region.
	Home          string
	Interruptible bool
	// MaxPriceUSDPerGPUHour excludes every region-slot whose price (time of
	// use included) is above it; 0 means no cap. It is never broken: a job
	// with no window under it is Held, even one that cannot meet its
	// deadline.
	MaxPriceUSDPerGPUHour float64
	// Current is the job's plan from an earlier round, if any; a re-plan
	// moves it only when the gain beats Config.Hysteresis.
	Current *Assignment
}

// PriceSchedule is a region's GPU price: a base price with optional
// time-of-use overrides by hour of day (UTC).
type PriceSchedule struct {
	USDPerGPUHour float64
	TimeOfUse     []TimeOfUsePrice
}

// TimeOfUsePrice overrides the base price for hours [FromHour, ToHour) UTC;
// FromHour > ToHour wraps past midnight.
type TimeOfUsePrice struct {
	FromHour, ToHour int
	USDPerGPUHour    float64
}

// At returns the price per GPU-hour in force at t.
func (p PriceSchedule) At(t time.Time) float64 {
	h := t.UTC().Hour()
	for _, tou := range p.TimeOfUse {
		in := h >= tou.FromHour && h < tou.ToHour
		if tou.FromHour > tou.ToHour {
			in = h >= tou.FromHour || h < tou.ToHour
		}
		if in {
			return tou.USDPerGPUHour
		}
	}
	return p.USDPerGPUHour
}

// Usage is GPUs already taken in a region over [Start, End): jobs released
// or running, which the planner does not move.
type Usage struct {
	Start, End time.Time
	GPUs       int
}

// Region is one regional GPU pool.
type Region struct {
	Name string
	// PUE multiplies IT energy into facility energy; 0 means 1.
	PUE    float64
	Price  PriceSchedule
	Series forecast.Series
	// Capacity is the pool's GPUs; 0 means unbounded (unknown).
	Capacity int
	// Workers lists the GPUs of each machine (worker or cluster node) of
	// the pool, when known. A job runs on one machine, so a job of N GPUs
	// can use only machines with at least N: GPUs on smaller ones are no
	// room for it (two 2-GPU workers do not hold a 3-GPU job). When set,
	// the pool's capacity is their sum and Capacity is ignored; empty
	// means Capacity GPUs that any job may use.
	Workers []int
	// MaxJobGPUs is the largest job the pool can run at all: its largest
	// machine, counting ones that are not up now. A job needing more is
	// never planned here. 0 means the largest of Workers, or no limit when
	// Workers is empty.
	MaxJobGPUs int
	// Busy lists capacity already committed.
	Busy []Usage
}

// Fits reports whether a job of gpus GPUs can run in r at all (see
// MaxJobGPUs).
func (r Region) Fits(gpus int) bool {
	m := r.maxJob()
	return m <= 0 || max(gpus, 1) <= m
}

// maxJob returns the largest job r runs; 0 = no limit.
func (r Region) maxJob() int {
	if r.MaxJobGPUs > 0 {
		return r.MaxJobGPUs
	}
	m := 0
	for _, w := range r.Workers {
		m = max(m, w)
	}
	return m
}

// Config tunes the planner. The zero value is usable: WithDefaults fills it.
type Config struct {
	// Slot is the planning granularity. Default 15m; down to 1s.
	Slot time.Duration
	// SafetyMargin is kept between a plan's end and the deadline for release
	// latency and duration misestimates. Default: the lesser of 2×Slot and
	// DefaultSafetyMargin, capped at half the job's slack (the time between
	// its earliest start and its deadline, less its duration). It covers
	// release latency, not a duration underestimated by more than it: set
	// it higher where estimates run short (policy/backtest/tune_test.go
	// measures both). A job that fits only without the margin is still
	// planned to finish by its deadline.
	SafetyMargin time.Duration
	// MinSegment is the shortest run segment of an interruptible job.
	// Default 4×Slot.
	MinSegment time.Duration
	// CarbonPriceUSDPerTonne, when > 0, makes the objective
	// cost + price × tCO2e; otherwise least emissions, cost breaking ties.
	CarbonPriceUSDPerTonne float64
	// Hysteresis is the fractional gain a re-plan needs to move a job off
	// its current plan. Default 0.001: plans follow each forecast update
	// while equal-cost windows do not flap. A larger value kept most jobs on
	// the plan made at submit and captured less of the oracle's savings in
	// the back-test (0.769 against 0.781 of it on one region in 2023,
	// 0.565 against 0.608 in the Let's Wait Awhile scenario II).
	Hysteresis float64
	// DefaultPowerW is the per-GPU draw for jobs that give none. Default 300.
	DefaultPowerW float64
	// Alternatives is how many runner-up options each assignment keeps for
	// explain, besides the winner. Default 5.
	Alternatives int
	// Horizon bounds how far ahead of now a run may start; jobs whose
	// deadline lies further out are planned inside it and re-planned later.
	// Default 7 days. Whatever it says, a round considers at most 65 536
	// start slots.
	Horizon time.Duration
	// Passes bounds the improvement passes over jobs when some region has a
	// capacity limit (see Plan). Default 3.
	Passes int
}

// DefaultSafetyMargin bounds Config.SafetyMargin's default. The default
// before, max(2×Slot, 10 % of the run time), captured 0.703 of the
// oracle's savings on the working-hours back-test of 2021–2022 and 0.748 on
// 2023 against 0.733 and 0.776 (single region); see
// policy/backtest/tune_test.go.
const DefaultSafetyMargin = 5 * time.Minute

// DefaultHysteresis is Config.Hysteresis's default.
const DefaultHysteresis = 0.001

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Slot <= 0 {
		c.Slot = 15 * time.Minute
	}
	if c.MinSegment <= 0 {
		c.MinSegment = 4 * c.Slot
	}
	if c.Hysteresis <= 0 {
		c.Hysteresis = DefaultHysteresis
	}
	if c.DefaultPowerW <= 0 {
		c.DefaultPowerW = 300
	}
	if c.Alternatives <= 0 {
		c.Alternatives = 5
	}
	if c.Horizon <= 0 {
		c.Horizon = 7 * 24 * time.Hour
	}
	if c.Passes <= 0 {
		c.Passes = 3
	}
	return c
}

// Input is everything one planning round sees.
type Input struct {
	Now     time.Time
	Jobs    []Job
	Regions []Region
	Config  Config
}

// Window is a half-open interval [Start, End).
type Window struct {
	Start, End time.Time
}

// Baseline is the run-now alternative: the job's home region (Job.Home),
// from its earliest start.
type Baseline struct {
	Region          string
	Start           time.Time
	ExpectedGCO2    float64
	ExpectedCostUSD float64
}

// Alternative is one option the planner weighed, for explain.
type Alternative struct {
	Region          string
	Start           time.Time
	ExpectedGCO2    float64
	ExpectedCostUSD float64
	// Rejected says why it lost ("more gCO2e", "over capacity", "past
	// deadline", "over max price"); empty for the winner.
	Rejected string
}

// Assignment is the plan for one job.
type Assignment struct {
	JobID  string
	Region string
	// Segments are the run windows, in order; one for a contiguous job.
	Segments        []Window
	ExpectedKWh     float64
	ExpectedGCO2    float64
	ExpectedCostUSD float64
	Baseline        Baseline
	// SavedByWaitingGCO2 is the chosen region run contiguously from the
	// earliest start, less ExpectedGCO2: what waiting for the window saves.
	// SavedByMovingGCO2 is Baseline.ExpectedGCO2 less that same run: what
	// running in the chosen region rather than the home region saves. The
	// two add up to Baseline.ExpectedGCO2 − ExpectedGCO2.
	SavedByWaitingGCO2 float64
	SavedByMovingGCO2  float64
	// Urgent is set when no plan finishes by the deadline: release now.
	Urgent bool
	// Held is set when no allowed region has a window under the job's
	// MaxPriceUSDPerGPUHour in which it could run (before its deadline,
	// or, when that cannot be met, at once): the job has no Region and no
	// Segments and is not to be released; Reason says so.
	Held bool
	// Kept is set when the job stays on Job.Current because no move gained
	// more than Config.Hysteresis.
	Kept bool
	// Reason is a sentence for people: "defer 14h to save 6% …".
	Reason       string
	Alternatives []Alternative
}

// Start returns the start of the first segment.
func (a Assignment) Start() time.Time {
	if len(a.Segments) == 0 {
		return time.Time{}
	}
	return a.Segments[0].Start
}

// End returns the end of the last segment.
func (a Assignment) End() time.Time {
	if len(a.Segments) == 0 {
		return time.Time{}
	}
	return a.Segments[len(a.Segments)-1].End
}

// Result is the outcome of one planning round: an assignment per input job,
// in input order.
type Result struct {
	Assignments []Assignment
}

// ReleaseAt is the release rule the server and the back-test share: an urgent
// job is released at now; any other at the start of its first segment, or at
// now if that start has passed. A job with no segments is released at now.
// A caller releases a job once ReleaseAt(a, now) is not after now. A Held
// assignment has no window and is never to be released: callers check
// Held first.
func ReleaseAt(a Assignment, now time.Time) time.Time {
	if a.Urgent || len(a.Segments) == 0 {
		return now
	}
	if s := a.Segments[0].Start; s.After(now) {
		return s
	}
	return now
}
