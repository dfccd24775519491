package greenq

import (
	"time"
)

// State is where a job is in its lifecycle:
//
//	pending → planned → released → running → succeeded | failed | cancelled | expired
//
// and running → planned again when an interruptible job is paused at the end
// of a run segment.
type State string

// Job states.
const (
	StatePending   State = "pending"   // stored, not yet planned
	StatePlanned   State = "planned"   // has a region and window; may still be re-planned
	StateReleased  State = "released"  // handed to its region's queue; no longer re-planned
	StateRunning   State = "running"   // a worker runs it
	StateSucceeded State = "succeeded" // exited 0
	StateFailed    State = "failed"    // exited non-zero, or could not be started
	StateCancelled State = "cancelled" // cancelled by a user
	StateExpired   State = "expired"   // could not start at all before its deadline
)

// States lists every state in lifecycle order.
var States = []State{StatePending, StatePlanned, StateReleased, StateRunning,
	StateSucceeded, StateFailed, StateCancelled, StateExpired}

// Final reports whether s is a terminal state.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateExpired:
		return true
	}
	return false
}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// transitions is the state machine: from → allowed next states.
var transitions = map[State][]State{
	StatePending:  {StatePlanned, StateReleased, StateCancelled, StateExpired},
	StatePlanned:  {StatePlanned, StatePending, StateReleased, StateCancelled, StateExpired},
	StateReleased: {StateRunning, StateCancelled, StateExpired, StateFailed, StatePlanned},
	StateRunning:  {StateSucceeded, StateFailed, StateCancelled, StatePlanned, StateRunning, StateReleased},
}

// CanTransition reports whether the state machine allows from → to.
// running → released covers a worker that died mid-job and whose task asynq
// hands to another worker; running → planned is an interruptible job paused
// at the end of a segment.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Kind says what sort of ML work a job is.
type Kind string

// Job kinds.
const (
	KindTrain Kind = "train"
	KindSweep Kind = "sweep"
	KindInfer Kind = "infer"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindTrain || k == KindSweep || k == KindInfer }

// Job is a job record as users and scripts see it (GET /v1/jobs/{id},
// greenq status -o json). Times are UTC when serialised.
type Job struct {
	ID                    string            `json:"id"`
	Name                  string            `json:"name"`
	Kind                  Kind              `json:"kind"`
	State                 State             `json:"state"`
	Tenant                string            `json:"tenant,omitempty"`
	Key                   string            `json:"key,omitempty"`
	Command               []string          `json:"command"`
	SubmittedAt           time.Time         `json:"submitted_at"`
	UpdatedAt             time.Time         `json:"updated_at"`
	Deadline              time.Time         `json:"deadline"`
	DurationEstimateS     int64             `json:"duration_estimate_s"`
	GPUs                  int               `json:"gpus"`
	Regions               []string          `json:"regions"`
	HomeRegion            string            `json:"home_region,omitempty"` // where "run now" runs (SubmitRequest.HomeRegion)
	Interruptible         bool              `json:"interruptible"`
	Group                 string            `json:"group,omitempty"`
	Trial                 int               `json:"trial,omitempty"`
	Tags                  map[string]string `json:"tags,omitempty"`
	MaxPriceUSDPerGPUHour float64           `json:"max_price_usd_per_gpu_hour,omitempty"`
	// PowerW is the expected draw per GPU in watts; 0 means the region's
	// or the planner's default.
	PowerW         float64 `json:"power_w,omitempty"`
	FunctionalUnit string  `json:"functional_unit,omitempty"`
	// EstimateSource says where DurationEstimateS and the planned energy came
	// from: "user", "measured" (an earlier run of the same name) or "default".
	EstimateSource string `json:"estimate_source,omitempty"`
	// JobSpec is what the job carries to the worker: env, secret names,
	// workdir, image and how it is stopped.
	JobSpec
	// Attempts counts starts of the job by workers (retries after a worker
	// died show here).
	Attempts int      `json:"attempts"`
	Error    string   `json:"error,omitempty"`
	Plan     *Plan    `json:"plan,omitempty"`
	Run      *Run     `json:"run,omitempty"`
	Receipt  *Receipt `json:"receipt,omitempty"`
	// Segments records the run segments actually done (interruptible jobs
	// may have several).
	Segments []RunSegment `json:"segments,omitempty"`
	// Outputs lists what the job left in GREENQ_OUTPUT_DIR, as of its
	// latest run.
	Outputs *Outputs `json:"outputs,omitempty"`
}

// Outputs are the files a job wrote to its output directory, and where
// they are kept.
type Outputs struct {
	// Location is the job's output directory on the region's shared
	// storage, or its object-store URL (file://, s3://…).
	Location string       `json:"location"`
	Files    []OutputFile `json:"files"`
	// Bytes is the files' total size.
	Bytes int64 `json:"bytes"`
}

// OutputFile is one output file, by its path relative to Location.
type OutputFile struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Duration returns the job's estimated run time.
func (j *Job) Duration() time.Duration { return time.Duration(j.DurationEstimateS) * time.Second }

// Plan is the planner's decision for a job, with the run-now baseline it is
// measured against.
type Plan struct {
	Region          string    `json:"region"`
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	Segments        []Window  `json:"segments,omitempty"`
	ExpectedGCO2    float64   `json:"expected_gco2"`
	ExpectedCostUSD float64   `json:"expected_cost_usd"`
	ExpectedKWh     float64   `json:"expected_kwh"`
	Reason          string    `json:"reason"`
	// Urgent is set when the deadline can no longer be met with margin: the
	// job is released at once.
	Urgent bool `json:"urgent,omitempty"`
	// Provisional marks the plan a job gets at submit, before the leader's
	// capacity-aware round replaces it.
	Provisional bool `json:"provisional,omitempty"`
	// Held is set when no allowed region has a window under the job's
	// price cap (max_price_usd_per_gpu_hour) before its deadline: the job
	// has no region or window, stays pending, is never released above the
	// cap, and expires at its deadline unless a later round finds a window.
	Held bool `json:"held,omitempty"`
	// Signal names the fallback carbon signal the plan rests on when its
	// region's provider series was not available: "none" (no signal), a
	// provider's last good series, or greenq's own forecaster. Empty when
	// the plan uses the provider's own series.
	Signal   string   `json:"signal,omitempty"`
	Baseline Baseline `json:"baseline"`
	// SavedByWaitingGCO2 and SavedByMovingGCO2 split what the plan expects
	// to save against the baseline (Baseline.ExpectedGCO2 − ExpectedGCO2):
	// waiting is the plan's region run at once against the plan;
	// moving is the baseline (the home region at once) against the plan's
	// region at once. They add up to the saving.
	SavedByWaitingGCO2 float64   `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2  float64   `json:"saved_by_moving_gco2"`
	PlannedAt          time.Time `json:"planned_at"`
	// Alternatives are runner-up options the planner weighed, for explain.
	Alternatives []Alternative `json:"alternatives,omitempty"`
}

// Alternative is one option the planner weighed and why it lost.
type Alternative struct {
	Region          string    `json:"region"`
	Start           time.Time `json:"start"`
	ExpectedGCO2    float64   `json:"expected_gco2"`
	ExpectedCostUSD float64   `json:"expected_cost_usd"`
	// Rejected says why it lost; empty for the winner.
	Rejected string `json:"rejected,omitempty"`
}

// Window is a half-open interval [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Baseline is what running at once would have been: the job's home region
// (Job.HomeRegion), starting at submit (or now, for a plan made later).
type Baseline struct {
	Region          string    `json:"region"`
	Start           time.Time `json:"start"`
	ExpectedGCO2    float64   `json:"expected_gco2"`
	ExpectedCostUSD float64   `json:"expected_cost_usd,omitempty"`
}

// Run describes the (latest) execution of a job on a worker.
type Run struct {
	Region     string     `json:"region"`
	Worker     string     `json:"worker"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Attempt    int        `json:"attempt"`
	// Release is the release number of the task that started this run.
	Release    int   `json:"release,omitempty"`
	GPUIndices []int `json:"gpu_indices,omitempty"`
}

// RunSegment is one stretch of real execution.
type RunSegment struct {
	Region    string    `json:"region"`
	Worker    string    `json:"worker"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	EnergyKWh float64   `json:"energy_kwh"`
}

// Receipt is the carbon receipt a worker leaves on a finished job:
//
//	GCO2      = EnergyKWh × PUE × IntensityGCO2PerKWh
//	SavedGCO2 = BaselineGCO2 − GCO2 = SavedByWaitingGCO2 + SavedByMovingGCO2
//	CostUSD   = GPUHours × PriceUSDPerGPUHour
//
// PUE, prices and the embodied factor are the server's region
// configuration. A receipt written while the run's hours had only forecast
// intensities is restated from the provider's actuals when they arrive
// (RestatedAt, GCO2AtFinish).
type Receipt struct {
	EnergyKWh    float64 `json:"energy_kwh"`
	GPUEnergyKWh float64 `json:"gpu_energy_kwh"`
	CPUEnergyKWh float64 `json:"cpu_energy_kwh"`
	RAMEnergyKWh float64 `json:"ram_energy_kwh"`
	// EnergySource is "nvml", "nvml-power-sampling", "slurm" or
	// "estimate" (GPU); EnergySource.Measured tells a measurement.
	EnergySource    EnergySource `json:"energy_source"`
	CPUEnergySource EnergySource `json:"cpu_energy_source,omitempty"`
	// EnergyMeter says where the energy was measured: "worker" (by the
	// worker, on the job's machine), "greenq-meter" (by greenq meter where
	// the job ran: a Slurm node, a pod), "slurm" (the cluster's energy
	// accounting), "greenq-meter-api" (greenq meter's reading, posted to
	// the API with the job's token) or "none" (the job ran elsewhere and
	// nothing measured it: the GPU figure is GPUs × power × time,
	// energy_source "estimate").
	EnergyMeter string  `json:"energy_meter,omitempty"`
	PUE         float64 `json:"pue"`
	// IntensityGCO2PerKWh is time-weighted over the run's real intervals.
	IntensityGCO2PerKWh float64 `json:"intensity_gco2_per_kwh"`
	// IntensitySource names the provider and whether actuals or forecast
	// values were used, e.g. "file:actual".
	IntensitySource string  `json:"intensity_source,omitempty"`
	Signal          string  `json:"signal,omitempty"` // average | marginal
	GCO2            float64 `json:"gco2"`
	// BaselineGCO2 is the same energy run at submit in the home region
	// (BaselineRegion), for as long as the job ran.
	BaselineGCO2 float64 `json:"baseline_gco2"`
	SavedGCO2    float64 `json:"saved_gco2"`
	// SavedByWaitingGCO2 is what the same region(s) the job ran in would
	// have emitted had it run at submit, less what it emitted.
	SavedByWaitingGCO2 float64 `json:"saved_by_waiting_gco2"`
	// SavedByMovingGCO2 is the rest of SavedGCO2: the home region at submit
	// against the region(s) it ran in at submit.
	SavedByMovingGCO2           float64 `json:"saved_by_moving_gco2"`
	BaselineRegion              string  `json:"baseline_region,omitempty"`
	BaselineIntensityGCO2PerKWh float64 `json:"baseline_intensity_gco2_per_kwh,omitempty"`
	EmbodiedGCO2                float64 `json:"embodied_gco2,omitempty"`
	// GPUHours is GPUs × the time the job really ran.
	GPUHours float64 `json:"gpu_hours"`
	// CostUSD is what that compute cost: GPU-hours × the region's price in
	// force while it ran (time-of-use schedules honoured).
	CostUSD float64 `json:"cost_usd"`
	// PriceUSDPerGPUHour is CostUSD / GPUHours, the mean price paid.
	PriceUSDPerGPUHour float64 `json:"price_usd_per_gpu_hour"`
	// GCO2AtFinish is GCO2 as first written, when the receipt has been
	// restated from actuals since; RestatedAt is when.
	GCO2AtFinish *float64   `json:"gco2_at_finish,omitempty"`
	RestatedAt   *time.Time `json:"restated_at,omitempty"`
	// FunctionalUnits is how many units of FunctionalUnit the job reported
	// (SCI's R); 0 means one job.
	FunctionalUnits float64 `json:"functional_units,omitempty"`
	// SCI is (E×I + M) per functional unit (ISO/IEC 21031).
	SCI               float64 `json:"sci,omitempty"`
	FunctionalUnit    string  `json:"functional_unit,omitempty"`
	DurationS         float64 `json:"duration_s"`
	GPUModel          string  `json:"gpu_model,omitempty"`
	GPUUtilizationPct float64 `json:"gpu_utilization_pct,omitempty"`
	GPUMemoryUsedMiB  float64 `json:"gpu_memory_used_mib,omitempty"`
	// GPUUtilizationSamples counts the NVML utilisation samples behind
	// GPUUtilizationPct; 0 means utilisation was not measured (as opposed
	// to measured idle).
	GPUUtilizationSamples int `json:"gpu_utilization_samples,omitempty"`
}
