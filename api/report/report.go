package report

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// How a figure was obtained (Figure.Basis).
const (
	BasisMeasured       = "measured"       // metered (NVML, RAPL) or timed
	BasisEstimated      = "estimated"      // modelled, e.g. power × time
	BasisMixed          = "mixed"          // part measured, part estimated
	BasisConfigured     = "configured"     // an operator's setting, e.g. PUE
	BasisPlanned        = "planned"        // the planner's expectation
	BasisCounterfactual = "counterfactual" // what running at once would have been
)

// DeferredAfter is how long after submission a job must have started to
// count as deferred; shorter waits are queueing, not carbon shifting.
const DeferredAfter = time.Minute

// Figure is one reported number and how it was obtained.
type Figure struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Basis is one of the Basis constants.
	Basis string `json:"basis"`
	// Sources names the meters or providers behind Value, e.g. "nvml",
	// "electricitymaps:actual".
	Sources []string `json:"sources,omitempty"`
}

// Estimated reports whether f rests on a model, a forecast or a
// counterfactual rather than a meter or a setting, so that people see it
// marked "≈".
func (f Figure) Estimated() bool {
	switch f.Basis {
	case BasisEstimated, BasisMixed, BasisPlanned, BasisCounterfactual:
		return true
	}
	return strings.Contains(f.Basis, "forecast")
}

// Report is what Build returns and Render writes.
type Report struct {
	// Options is the selection the report covers.
	Options Options `json:"options"`
	// Start and End span the runs the figures cover, those of the jobs
	// with a receipt (zero when there are none).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Totals covers every selected job that has finished (succeeded,
	// failed, cancelled or expired); so do the breakdowns and Jobs.
	Totals Summary `json:"totals"`
	// NotFinished counts the selected jobs that have not finished yet and
	// what their plans expect them to cost and emit; none of it is in
	// Totals.
	NotFinished NotFinished `json:"not_finished"`
	// Breakdowns, each sorted by key. ByRegion, ByTenant and ByMonth add up
	// to Totals ("(none)" collects jobs without a region or tenant). A job
	// with several tags appears under each, so ByTag does not add up, and
	// ByGPUModel holds only jobs with a receipt (the model comes from it).
	ByRegion   []Summary `json:"by_region"`
	ByTenant   []Summary `json:"by_tenant"`
	ByTag      []Summary `json:"by_tag"`
	ByGPUModel []Summary `json:"by_gpu_model"`
	ByMonth    []Summary `json:"by_month"`
	// Jobs has one line per selected job, ordered by time then id.
	Jobs        []JobLine   `json:"jobs"`
	Utilisation Utilisation `json:"utilisation"`
	// Notes say how the figures were obtained, for readers of any format.
	Notes []string `json:"notes"`
}

// NotFinished is the selected jobs not finished yet: pending, planned,
// released or running (a paused job is planned again).
type NotFinished struct {
	Jobs        int                  `json:"jobs"`
	JobsByState map[greenq.State]int `json:"jobs_by_state"`
	// Planned counts those with a plan (a held plan, with no window under
	// the job's price cap, expects nothing); ExpectedCostUSD and
	// ExpectedGCO2 sum what the plans expect (basis planned).
	Planned         int    `json:"planned"`
	Held            int    `json:"held"`
	ExpectedCostUSD Figure `json:"expected_cost_usd"`
	ExpectedGCO2    Figure `json:"expected_gco2"`
}

// Summary is the totals of a set of finished jobs. Energy, emissions,
// hours and cost cover the jobs with a carbon receipt (Receipts of them).
type Summary struct {
	// Key names the group in a breakdown ("" for the totals).
	Key         string               `json:"key,omitempty"`
	Jobs        int                  `json:"jobs"`
	JobsByState map[greenq.State]int `json:"jobs_by_state"`
	Receipts    int                  `json:"receipts"`
	// ReceiptsOnForecast counts receipts whose intensity rests, for some
	// hours, on a forecast not yet restated from the provider's actuals
	// (greenq.Receipt.RestsOnForecast); ReceiptsRestated those restated.
	ReceiptsOnForecast int    `json:"receipts_on_forecast"`
	ReceiptsRestated   int    `json:"receipts_restated"`
	GPUHours           Figure `json:"gpu_hours"`
	// EnergyKWh is IT energy (GPU + CPU + RAM), before PUE.
	EnergyKWh    Figure `json:"energy_kwh"`
	GPUEnergyKWh Figure `json:"gpu_energy_kwh"`
	CPUEnergyKWh Figure `json:"cpu_energy_kwh"`
	RAMEnergyKWh Figure `json:"ram_energy_kwh"`
	// MeasuredKWh and EstimatedKWh split EnergyKWh by how each part was
	// obtained; EnergyBySource splits it by meter, keyed part:source
	// (gpu:nvml, cpu:rapl, ram:estimate).
	MeasuredKWh    float64            `json:"measured_kwh"`
	EstimatedKWh   float64            `json:"estimated_kwh"`
	MeasuredShare  float64            `json:"measured_share"`
	EnergyBySource map[string]float64 `json:"energy_kwh_by_source"`
	// FacilityKWh is EnergyKWh × PUE; PUE is their ratio (energy-weighted).
	FacilityKWh Figure `json:"facility_kwh"`
	PUE         Figure `json:"pue"`
	// Emissions has one entry per carbon signal, sorted; average and
	// marginal intensities measure different things and are never added.
	Emissions    []Emissions `json:"emissions"`
	EmbodiedGCO2 Figure      `json:"embodied_gco2"`
	Deferral     Deferral    `json:"deferral"`
	CostUSD      Figure      `json:"cost_usd"`
	GPUModels    []Count     `json:"gpu_models"`
	Regions      []string    `json:"regions"`
	// IntensitySources lists the carbon providers behind the emissions.
	IntensitySources []string `json:"intensity_sources"`
	SCI              []SCI    `json:"sci"`
}

// Emissions are the operational emissions of the jobs whose receipts use
// one carbon signal.
type Emissions struct {
	// Signal is "average", "marginal" or "unspecified".
	Signal string `json:"signal"`
	Jobs   int    `json:"jobs"`
	// Intensity is the facility-energy-weighted mean of the receipts'.
	Intensity Figure `json:"intensity_gco2_per_kwh"`
	// GCO2 is location-based: facility energy × grid intensity while running.
	GCO2 Figure `json:"gco2"`
	// BaselineGCO2 is the run-now counterfactual: the same energy at submit
	// time in the job's home region.
	BaselineGCO2 Figure `json:"baseline_gco2"`
	// SavedGCO2 is BaselineGCO2 − GCO2; SavedShare is that over the baseline.
	SavedGCO2  Figure  `json:"saved_gco2"`
	SavedShare float64 `json:"saved_share"`
	// SavedByWaitingGCO2 + SavedByMovingGCO2 = SavedGCO2: what deferring
	// saved (the regions run in, at submit, against when they ran) and what
	// moving saved (the home region against those, at submit); each share
	// is over the baseline.
	SavedByWaitingGCO2 Figure  `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2  Figure  `json:"saved_by_moving_gco2"`
	WaitingShare       float64 `json:"waiting_share"`
	MovingShare        float64 `json:"moving_share"`
	// UnsplitGCO2 is the part of SavedGCO2 from receipts written before
	// greenq split savings, whose job ran outside its home region: it is
	// in neither share.
	UnsplitGCO2 float64 `json:"unsplit_gco2,omitempty"`
}

// Deferral is the waiting spent to get the savings.
type Deferral struct {
	// StartedJobs are the jobs with a receipt that have a run start;
	// DeferredJobs of them started at least DeferredAfter after submission;
	// MovedJobs ran outside their home region.
	StartedJobs  int `json:"started_jobs"`
	DeferredJobs int `json:"deferred_jobs"`
	MovedJobs    int `json:"moved_jobs"`
	// TotalHours sums run start − submit over the started jobs;
	// MeanDeferredHours averages it over the deferred ones.
	TotalHours        float64 `json:"total_hours"`
	MeanDeferredHours float64 `json:"mean_deferred_hours"`
	MaxHours          float64 `json:"max_hours"`
}

// Count is how much of the work one hardware model did.
type Count struct {
	Name     string  `json:"name"`
	Jobs     int     `json:"jobs"`
	GPUHours float64 `json:"gpu_hours"`
}

// SCI is the Software Carbon Intensity (ISO/IEC 21031) per functional unit:
// the mean of the receipts' per-job scores for one unit and signal.
type SCI struct {
	FunctionalUnit string  `json:"functional_unit"`
	Signal         string  `json:"signal"`
	Jobs           int     `json:"jobs"`
	Mean           float64 `json:"mean"`
	Min            float64 `json:"min"`
	Max            float64 `json:"max"`
	Unit           string  `json:"unit"`
}

// JobLine is one job's figures, as in the CSV rows.
type JobLine struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Kind        greenq.Kind       `json:"kind"`
	State       greenq.State      `json:"state"`
	Tenant      string            `json:"tenant,omitempty"`
	Group       string            `json:"group,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Region      string            `json:"region,omitempty"`
	GPUModel    string            `json:"gpu_model,omitempty"`
	GPUs        int               `json:"gpus"`
	SubmittedAt time.Time         `json:"submitted_at"`
	Start       time.Time         `json:"start,omitzero"`
	End         time.Time         `json:"end,omitzero"`
	DeferralS   float64           `json:"deferral_s"`
	// Receipt says whether the job has a carbon receipt; the figures below
	// are zero when it does not.
	Receipt             bool    `json:"receipt"`
	GPUHours            float64 `json:"gpu_hours"`
	EnergyKWh           float64 `json:"energy_kwh"`
	GPUEnergyKWh        float64 `json:"gpu_energy_kwh"`
	CPUEnergyKWh        float64 `json:"cpu_energy_kwh"`
	RAMEnergyKWh        float64 `json:"ram_energy_kwh"`
	MeasuredKWh         float64 `json:"measured_kwh"`
	EnergySource        string  `json:"energy_source,omitempty"`
	CPUEnergySource     string  `json:"cpu_energy_source,omitempty"`
	PUE                 float64 `json:"pue"`
	FacilityKWh         float64 `json:"facility_kwh"`
	IntensityGCO2PerKWh float64 `json:"intensity_gco2_per_kwh"`
	IntensitySource     string  `json:"intensity_source,omitempty"`
	Signal              string  `json:"signal,omitempty"`
	GCO2                float64 `json:"gco2"`
	BaselineRegion      string  `json:"baseline_region,omitempty"`
	BaselineGCO2        float64 `json:"baseline_gco2"`
	SavedGCO2           float64 `json:"saved_gco2"`
	SavedByWaitingGCO2  float64 `json:"saved_by_waiting_gco2"`
	SavedByMovingGCO2   float64 `json:"saved_by_moving_gco2"`
	EmbodiedGCO2        float64 `json:"embodied_gco2"`
	// CostUSD is the receipt's: GPU-hours run × the price in force.
	CostUSD float64 `json:"cost_usd"`
	// OnForecast is set when the receipt rests on forecast intensities
	// for some hours; RestatedAt is when it was restated from actuals,
	// and GCO2AtFinish its figure before.
	OnForecast     bool       `json:"on_forecast,omitempty"`
	RestatedAt     *time.Time `json:"restated_at,omitempty"`
	GCO2AtFinish   *float64   `json:"gco2_at_finish,omitempty"`
	SCI            float64    `json:"sci,omitempty"`
	FunctionalUnit string     `json:"functional_unit,omitempty"`
	// UtilisationPct is the mean GPU utilisation; nil when not sampled.
	UtilisationPct *float64 `json:"utilisation_pct,omitempty"`
	// IdleGPUHours = GPUHours × (1 − utilisation); IdleKWh is GPU energy
	// apportioned the same way.
	IdleGPUHours float64 `json:"idle_gpu_hours"`
	IdleKWh      float64 `json:"idle_kwh"`
	// Idle is set when UtilisationPct is below the idle threshold.
	Idle bool `json:"idle"`

	unsplit float64 // saving of an old receipt that cannot be split
}

// Utilisation is how busy the GPUs were.
type Utilisation struct {
	IdleBelowPct float64 `json:"idle_below_pct"`
	// SampledJobs have utilisation in their receipt; UnsampledJobs have a
	// receipt without it (estimated energy, or an older worker).
	SampledJobs   int `json:"sampled_jobs"`
	UnsampledJobs int `json:"unsampled_jobs"`
	// IdleJobs lists the IDs of the flagged jobs (details in Report.Jobs).
	IdleJobs []string `json:"idle_jobs"`
	// Pools has one entry per region with sampled jobs, most idle
	// GPU-hours first.
	Pools []Pool `json:"pools"`
}

// Pool is one region's idle GPU time.
type Pool struct {
	Region      string  `json:"region"`
	SampledJobs int     `json:"sampled_jobs"`
	IdleJobs    int     `json:"idle_jobs"`
	GPUHours    float64 `json:"gpu_hours"`
	// MeanUtilisationPct is weighted by GPU-hours.
	MeanUtilisationPct float64 `json:"mean_utilisation_pct"`
	IdleGPUHours       float64 `json:"idle_gpu_hours"`
	// IdleKWh is an upper bound: idle GPUs draw less than busy ones.
	IdleKWh float64 `json:"idle_kwh"`
	// Idle is set when MeanUtilisationPct is below the idle threshold.
	Idle bool `json:"idle"`
}

// Build computes the report over the jobs o selects. It is deterministic:
// the same jobs and options give the same report, whatever their order.
//
// The report is over finished jobs: a job still pending, planned,
// released or running is counted only in NotFinished, with its planned
// cost and emissions.
func Build(jobs []*greenq.Job, o Options) Report {
	sel := Select(jobs, o)
	lines := make([]JobLine, 0, len(sel))
	var open []*greenq.Job
	for _, j := range sel {
		if !j.State.Final() {
			open = append(open, j)
			continue
		}
		lines = append(lines, lineOf(j, o.idleBelow()))
	}
	slices.SortFunc(lines, func(a, b JobLine) int {
		at, bt := lineTime(a), lineTime(b)
		if c := at.Compare(bt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})

	r := Report{Options: o, Jobs: lines, NotFinished: notFinished(open)}
	r.Totals = summarise("", lines)
	r.ByRegion = breakdown(lines, func(l JobLine) []string { return []string{orNone(l.Region)} })
	r.ByTenant = breakdown(lines, func(l JobLine) []string { return []string{orNone(l.Tenant)} })
	r.ByTag = breakdown(lines, func(l JobLine) []string {
		var keys []string
		for k, v := range l.Tags {
			keys = append(keys, k+"="+v)
		}
		return keys
	})
	r.ByGPUModel = breakdown(lines, func(l JobLine) []string {
		if !l.Receipt {
			return nil
		}
		return []string{orNone(l.GPUModel)}
	})
	r.ByMonth = breakdown(lines, func(l JobLine) []string { return []string{lineTime(l).Format("2006-01")} })
	for _, l := range lines {
		if !l.Receipt || l.Start.IsZero() {
			continue
		}
		if r.Start.IsZero() || l.Start.Before(r.Start) {
			r.Start = l.Start
		}
		end := l.End
		if end.IsZero() {
			end = l.Start
		}
		if end.After(r.End) {
			r.End = end
		}
	}
	r.Utilisation = utilisation(lines, o.idleBelow())
	r.Notes = notes(r)
	return r
}

// notFinished sums the jobs not finished yet by what their plans expect.
func notFinished(jobs []*greenq.Job) NotFinished {
	n := NotFinished{JobsByState: map[greenq.State]int{},
		ExpectedCostUSD: Figure{Unit: "USD", Basis: BasisPlanned, Sources: []string{"plan expected cost"}},
		ExpectedGCO2:    Figure{Unit: "gCO2e", Basis: BasisPlanned, Sources: []string{"plan expected emissions"}}}
	for _, j := range jobs {
		n.Jobs++
		n.JobsByState[j.State]++
		switch p := j.Plan; {
		case p == nil:
		case p.Held:
			n.Held++
		default:
			n.Planned++
			n.ExpectedCostUSD.Value += p.ExpectedCostUSD
			n.ExpectedGCO2.Value += p.ExpectedGCO2
		}
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func lineTime(l JobLine) time.Time {
	if !l.Start.IsZero() {
		return l.Start
	}
	return l.SubmittedAt
}

// lineOf computes one job's figures.
func lineOf(j *greenq.Job, idleBelow float64) JobLine {
	l := JobLine{
		ID: j.ID, Name: j.Name, Kind: j.Kind, State: j.State, Tenant: j.Tenant,
		Group: j.Group, Tags: j.Tags, Region: jobRegion(j), GPUs: j.GPUs,
		SubmittedAt: j.SubmittedAt.UTC(), FunctionalUnit: j.FunctionalUnit,
	}
	if s := jobStart(j); !s.IsZero() {
		l.Start = s.UTC()
		l.DeferralS = max(0, s.Sub(j.SubmittedAt).Seconds())
	}
	l.End = jobEnd(j)
	rc := j.Receipt
	if rc == nil {
		return l
	}
	l.Receipt = true
	l.GPUModel = rc.GPUModel
	l.GPUHours = gpuHours(j)
	l.EnergyKWh = rc.EnergyKWh
	l.GPUEnergyKWh, l.CPUEnergyKWh, l.RAMEnergyKWh = rc.GPUEnergyKWh, rc.CPUEnergyKWh, rc.RAMEnergyKWh
	if l.GPUEnergyKWh+l.CPUEnergyKWh+l.RAMEnergyKWh == 0 {
		// An older receipt without the split: all of it is the GPUs'.
		l.GPUEnergyKWh = rc.EnergyKWh
	}
	l.EnergySource, l.CPUEnergySource = string(rc.EnergySource), string(rc.CPUEnergySource)
	if rc.EnergySource.Measured() {
		l.MeasuredKWh += l.GPUEnergyKWh
	}
	if rc.CPUEnergySource.Measured() {
		l.MeasuredKWh += l.CPUEnergyKWh
	}
	l.MeasuredKWh = min(l.MeasuredKWh, l.EnergyKWh)
	l.PUE = rc.PUE
	if l.PUE <= 0 {
		l.PUE = 1
	}
	l.FacilityKWh = l.EnergyKWh * l.PUE
	l.IntensityGCO2PerKWh = rc.IntensityGCO2PerKWh
	l.IntensitySource = rc.IntensitySource
	l.Signal = rc.Signal
	if l.Signal == "" {
		l.Signal = "unspecified"
	}
	l.GCO2, l.BaselineGCO2, l.SavedGCO2 = rc.GCO2, rc.BaselineGCO2, rc.SavedGCO2
	l.SavedByWaitingGCO2, l.SavedByMovingGCO2 = rc.SavedByWaitingGCO2, rc.SavedByMovingGCO2
	l.BaselineRegion = rc.BaselineRegion
	if l.BaselineRegion == "" && j.Plan != nil {
		l.BaselineRegion = j.Plan.Baseline.Region
	}
	if rc.SavedByWaitingGCO2 == 0 && rc.SavedByMovingGCO2 == 0 && rc.SavedGCO2 != 0 {
		// Written before receipts split the saving: run at home, all of it
		// was waiting; elsewhere it cannot be split.
		if l.BaselineRegion == l.Region {
			l.SavedByWaitingGCO2 = rc.SavedGCO2
		} else {
			l.unsplit = rc.SavedGCO2
		}
	}
	l.EmbodiedGCO2 = rc.EmbodiedGCO2
	l.CostUSD = rc.CostUSD
	l.OnForecast = rc.RestsOnForecast()
	l.RestatedAt, l.GCO2AtFinish = rc.RestatedAt, rc.GCO2AtFinish
	l.SCI = rc.SCI
	if rc.FunctionalUnit != "" {
		l.FunctionalUnit = rc.FunctionalUnit
	}
	// Sampled: the worker counted utilisation samples (a GPU idle all run
	// reads 0 %), or, for receipts written before that count existed, any
	// non-zero reading.
	if rc.GPUUtilizationSamples > 0 || rc.GPUUtilizationPct > 0 || rc.GPUMemoryUsedMiB > 0 {
		u := min(max(rc.GPUUtilizationPct, 0), 100)
		l.UtilisationPct = &u
		idle := 1 - u/100
		l.IdleGPUHours = l.GPUHours * idle
		l.IdleKWh = l.GPUEnergyKWh * idle
		l.Idle = u < idleBelow
	}
	return l
}

func jobEnd(j *greenq.Job) time.Time {
	if n := len(j.Segments); n > 0 && !j.Segments[n-1].End.IsZero() {
		return j.Segments[n-1].End.UTC()
	}
	if j.Run != nil && j.Run.FinishedAt != nil {
		return j.Run.FinishedAt.UTC()
	}
	return time.Time{}
}

// gpuHours is GPUs × the time the job really ran: its segments, else the
// receipt's duration, else the run's start to finish.
func gpuHours(j *greenq.Job) float64 {
	var d time.Duration
	for _, s := range j.Segments {
		if s.End.After(s.Start) {
			d += s.End.Sub(s.Start)
		}
	}
	switch {
	case d > 0:
	case j.Receipt != nil && j.Receipt.DurationS > 0:
		return float64(j.GPUs) * j.Receipt.DurationS / 3600
	case j.Run != nil && j.Run.FinishedAt != nil:
		d = j.Run.FinishedAt.Sub(j.Run.StartedAt)
	}
	return float64(j.GPUs) * d.Hours()
}

// measuredSource reports whether an energy source label of a JobLine
// names a meter rather than a model (greenq.EnergySource.Measured).
func measuredSource(s string) bool { return greenq.EnergySource(s).Measured() }

// breakdown groups lines under the keys keyOf gives and summarises each.
func breakdown(lines []JobLine, keyOf func(JobLine) []string) []Summary {
	groups := map[string][]JobLine{}
	for _, l := range lines {
		for _, k := range keyOf(l) {
			groups[k] = append(groups[k], l)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Summary, 0, len(keys))
	for _, k := range keys {
		out = append(out, summarise(k, groups[k]))
	}
	return out
}

// basisOf names how a quantity with the given measured and estimated parts
// was obtained.
func basisOf(measured, estimated float64) string {
	switch {
	case estimated > 0 && measured > 0:
		return BasisMixed
	case measured > 0:
		return BasisMeasured
	}
	return BasisEstimated
}

// set collects names and returns them sorted.
type set map[string]bool

func (s set) add(v string) {
	if v != "" {
		s[v] = true
	}
}

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// summarise adds up lines into the Summary of one group (key).
func summarise(key string, lines []JobLine) Summary {
	a := summary{
		s:       Summary{Key: key, JobsByState: map[greenq.State]int{}},
		energy:  energyAcc{bySource: map[string]float64{}, gpuSources: set{}, cpuSources: set{}},
		regions: set{}, intensitySources: set{},
		signals: map[string]*signalAcc{}, models: map[string]*Count{}, sci: sciAcc{},
	}
	for _, l := range lines {
		a.add(l)
	}
	return a.finish()
}

// summary accumulates one group's Summary line by line.
type summary struct {
	s                         Summary
	energy                    energyAcc
	regions, intensitySources set
	signals                   map[string]*signalAcc
	models                    map[string]*Count
	sci                       sciAcc
}

// add counts one line: every job by state, and what a receipt tells.
func (a *summary) add(l JobLine) {
	a.s.Jobs++
	a.s.JobsByState[l.State]++
	if !l.Receipt {
		return
	}
	a.s.Receipts++
	if l.OnForecast {
		a.s.ReceiptsOnForecast++
	}
	if l.RestatedAt != nil {
		a.s.ReceiptsRestated++
	}
	a.s.Deferral.add(l)
	a.s.GPUHours.Value += l.GPUHours
	a.energy.add(l)
	a.regions.add(l.Region)
	a.intensitySources.add(l.IntensitySource)

	sig := a.signals[l.Signal]
	if sig == nil {
		sig = &signalAcc{sources: set{}, baselineRegions: set{}}
		a.signals[l.Signal] = sig
	}
	sig.add(l)

	m := orNone(l.GPUModel)
	if a.models[m] == nil {
		a.models[m] = &Count{Name: m}
	}
	a.models[m].Jobs++
	a.models[m].GPUHours += l.GPUHours
	a.sci.add(l)
}

// finish turns the sums into figures.
func (a *summary) finish() Summary {
	s := a.s
	if s.Deferral.DeferredJobs > 0 {
		s.Deferral.MeanDeferredHours /= float64(s.Deferral.DeferredJobs)
	}
	s.GPUHours.Unit, s.GPUHours.Basis = "GPU-h", BasisMeasured
	s.GPUHours.Sources = []string{"run segments"}
	a.energy.figures(&s)
	s.Regions = a.regions.sorted()
	s.IntensitySources = a.intensitySources.sorted()
	for _, sig := range sortedKeys(a.signals) {
		s.Emissions = append(s.Emissions, a.signals[sig].emissions(sig))
	}
	for _, name := range sortedKeys(a.models) {
		s.GPUModels = append(s.GPUModels, *a.models[name])
	}
	s.SCI = a.sci.means()
	return s
}

// add counts a started job's deferral and a job run outside its home
// region.
func (d *Deferral) add(l JobLine) {
	if !l.Start.IsZero() {
		h := l.DeferralS / 3600
		d.StartedJobs++
		d.TotalHours += h
		d.MaxHours = max(d.MaxHours, h)
		if l.DeferralS >= DeferredAfter.Seconds() {
			d.DeferredJobs++
			d.MeanDeferredHours += h
		}
	}
	if l.BaselineRegion != "" && l.Region != "" && l.BaselineRegion != l.Region {
		d.MovedJobs++
	}
}

// energyAcc sums energy by component and by how it was obtained, facility
// energy, embodied emissions and cost.
type energyAcc struct {
	gpu, cpu, ram, total     float64
	gpuMeas, cpuMeas, meas   float64
	facility, embodied, cost float64
	bySource                 map[string]float64
	gpuSources, cpuSources   set
}

func (e *energyAcc) add(l JobLine) {
	e.total += l.EnergyKWh
	e.gpu += l.GPUEnergyKWh
	e.cpu += l.CPUEnergyKWh
	e.ram += l.RAMEnergyKWh
	if measuredSource(l.EnergySource) {
		e.gpuMeas += l.GPUEnergyKWh
	}
	if measuredSource(l.CPUEnergySource) {
		e.cpuMeas += l.CPUEnergyKWh
	}
	e.meas += l.MeasuredKWh
	e.bySource["gpu:"+orEstimate(l.EnergySource)] += l.GPUEnergyKWh
	if l.CPUEnergyKWh > 0 {
		e.bySource["cpu:"+orEstimate(l.CPUEnergySource)] += l.CPUEnergyKWh
	}
	if l.RAMEnergyKWh > 0 {
		e.bySource["ram:estimate"] += l.RAMEnergyKWh
	}
	e.gpuSources.add(l.EnergySource)
	e.cpuSources.add(l.CPUEnergySource)
	e.facility += l.FacilityKWh
	e.embodied += l.EmbodiedGCO2
	e.cost += l.CostUSD
}

// figures sets s's energy, facility, embodied and cost figures.
func (e *energyAcc) figures(s *Summary) {
	s.MeasuredKWh = e.meas
	s.EnergyBySource = e.bySource
	s.EstimatedKWh = e.total - e.meas
	s.MeasuredShare = ratio(e.meas, e.total)
	s.EnergyKWh = Figure{Value: e.total, Unit: "kWh", Basis: basisOf(e.meas, s.EstimatedKWh),
		Sources: sortedKeys(e.bySource)}
	s.GPUEnergyKWh = Figure{Value: e.gpu, Unit: "kWh", Basis: basisOf(e.gpuMeas, e.gpu-e.gpuMeas), Sources: e.gpuSources.sorted()}
	s.CPUEnergyKWh = Figure{Value: e.cpu, Unit: "kWh", Basis: basisOf(e.cpuMeas, e.cpu-e.cpuMeas), Sources: e.cpuSources.sorted()}
	s.RAMEnergyKWh = Figure{Value: e.ram, Unit: "kWh", Basis: BasisEstimated, Sources: ramSource(e.ram).sorted()}
	s.FacilityKWh = Figure{Value: e.facility, Unit: "kWh", Basis: s.EnergyKWh.Basis, Sources: []string{"IT energy × region PUE"}}
	s.PUE = Figure{Value: ratio(e.facility, e.total), Unit: "", Basis: BasisConfigured, Sources: []string{"region configuration, energy-weighted"}}
	s.EmbodiedGCO2 = Figure{Value: e.embodied, Unit: "gCO2e", Basis: BasisEstimated, Sources: []string{"region embodied factor per GPU-hour"}}
	s.CostUSD = Figure{Value: e.cost, Unit: "USD", Basis: BasisMeasured, Sources: []string{"receipts: GPU-hours run × the region's price in force"}}
}

// signalAcc sums the emissions of the receipts on one carbon signal.
type signalAcc struct {
	jobs                  int
	facility, weighted    float64
	gco2, baseline, saved float64
	waiting, moving       float64
	unsplit               float64
	measured, estimated   float64
	sources               set
	baselineRegions       set
}

func (a *signalAcc) add(l JobLine) {
	a.jobs++
	a.facility += l.FacilityKWh
	a.weighted += l.FacilityKWh * l.IntensityGCO2PerKWh
	a.gco2 += l.GCO2
	a.baseline += l.BaselineGCO2
	a.saved += l.SavedGCO2
	a.waiting += l.SavedByWaitingGCO2
	a.moving += l.SavedByMovingGCO2
	a.unsplit += l.unsplit
	a.measured += l.MeasuredKWh
	a.estimated += l.EnergyKWh - l.MeasuredKWh
	a.sources.add(l.IntensitySource)
	a.baselineRegions.add(l.BaselineRegion)
}

// emissions are the figures of signal sig.
func (a *signalAcc) emissions(sig string) Emissions {
	e := Emissions{Signal: sig, Jobs: a.jobs}
	basis := basisOf(a.measured, a.estimated)
	src := a.sources.sorted()
	e.Intensity = Figure{Unit: "gCO2e/kWh", Basis: intensityBasis(src), Sources: src}
	e.Intensity.Value = ratio(a.weighted, a.facility)
	e.GCO2 = Figure{Value: a.gco2, Unit: "gCO2e", Basis: basis, Sources: src}
	e.BaselineGCO2 = Figure{Value: a.baseline, Unit: "gCO2e", Basis: BasisCounterfactual,
		Sources: append([]string{"same energy at submit time in the home region"}, a.baselineRegions.sorted()...)}
	e.SavedGCO2 = Figure{Value: a.saved, Unit: "gCO2e", Basis: BasisCounterfactual, Sources: []string{"baseline − emitted"}}
	e.SavedShare = ratio(a.saved, a.baseline)
	e.SavedByWaitingGCO2 = Figure{Value: a.waiting, Unit: "gCO2e", Basis: BasisCounterfactual,
		Sources: []string{"the regions run in, at submit − emitted"}}
	e.SavedByMovingGCO2 = Figure{Value: a.moving, Unit: "gCO2e", Basis: BasisCounterfactual,
		Sources: []string{"baseline − the regions run in, at submit"}}
	e.WaitingShare, e.MovingShare = ratio(a.waiting, a.baseline), ratio(a.moving, a.baseline)
	e.UnsplitGCO2 = a.unsplit
	return e
}

// sciAcc sums SCI scores by functional unit and signal.
type sciAcc map[[2]string]*SCI

func (a sciAcc) add(l JobLine) {
	if l.SCI <= 0 {
		return
	}
	k := [2]string{orNone(l.FunctionalUnit), l.Signal}
	c := a[k]
	if c == nil {
		c = &SCI{FunctionalUnit: k[0], Signal: k[1], Min: l.SCI, Max: l.SCI, Unit: "gCO2e per " + k[0]}
		a[k] = c
	}
	c.Jobs++
	c.Mean += l.SCI
	c.Min, c.Max = min(c.Min, l.SCI), max(c.Max, l.SCI)
}

// means returns the scores, ordered by functional unit and signal, with
// their means.
func (a sciAcc) means() []SCI {
	keys := slices.SortedFunc(maps.Keys(a), func(x, y [2]string) int {
		return cmp.Or(strings.Compare(x[0], y[0]), strings.Compare(x[1], y[1]))
	})
	var out []SCI
	for _, k := range keys {
		c := *a[k]
		c.Mean /= float64(c.Jobs)
		out = append(out, c)
	}
	return out
}

// ratio is a/b, or 0 where that is not a finite number (b zero or tiny).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	if r := a / b; !math.IsInf(r, 0) && !math.IsNaN(r) {
		return r
	}
	return 0
}

// intensityBasis says whether intensities were the grid's actuals, a
// forecast, or both, from provider names such as "electricitymaps:actual".
func intensityBasis(sources []string) string {
	kinds := set{}
	for _, s := range sources {
		if i := strings.LastIndex(s, ":"); i >= 0 {
			kinds.add(s[i+1:])
		} else {
			kinds.add("unstated")
		}
	}
	if len(kinds) == 0 {
		return "unstated"
	}
	return strings.Join(kinds.sorted(), "+")
}

func orEstimate(s string) string {
	if s == "" {
		return "estimate"
	}
	return s
}

func ramSource(ram float64) set {
	if ram > 0 {
		return set{"ram:estimate": true}
	}
	return set{}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// utilisation gathers sampled jobs by pool and flags the idle ones.
func utilisation(lines []JobLine, idleBelow float64) Utilisation {
	u := Utilisation{IdleBelowPct: idleBelow, IdleJobs: []string{}}
	pools := map[string]*Pool{}
	busy := map[string]float64{}
	for _, l := range lines {
		if !l.Receipt {
			continue
		}
		if l.UtilisationPct == nil {
			u.UnsampledJobs++
			continue
		}
		u.SampledJobs++
		r := orNone(l.Region)
		p := pools[r]
		if p == nil {
			p = &Pool{Region: r}
			pools[r] = p
		}
		p.SampledJobs++
		p.GPUHours += l.GPUHours
		p.IdleGPUHours += l.IdleGPUHours
		p.IdleKWh += l.IdleKWh
		busy[r] += l.GPUHours * *l.UtilisationPct
		if l.Idle {
			p.IdleJobs++
			u.IdleJobs = append(u.IdleJobs, l.ID)
		}
	}
	for r, p := range pools {
		p.MeanUtilisationPct = ratio(busy[r], p.GPUHours)
		p.Idle = p.MeanUtilisationPct < idleBelow
		u.Pools = append(u.Pools, *p)
	}
	slices.SortFunc(u.Pools, func(a, b Pool) int {
		return cmp.Or(cmp.Compare(b.IdleGPUHours, a.IdleGPUHours), strings.Compare(a.Region, b.Region))
	})
	return u
}
