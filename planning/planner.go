package planning

import (
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// Planner maps greenq's jobs and regions onto policy.Plan with one
// policy.Config. It holds no other state and is safe for concurrent use.
type Planner struct {
	cfg policy.Config
}

// New returns a planner with cfg, its zero fields set to the policy
// defaults (policy.Config.WithDefaults).
func New(cfg policy.Config) *Planner {
	return &Planner{cfg: cfg.WithDefaults()}
}

// Config returns the policy configuration the planner plans with, defaults
// filled in.
func (p *Planner) Config() policy.Config { return p.cfg }

// Region is one region's facts for a plan, as the I/O layer read them.
type Region struct {
	// Config is the region as configured; when Live, Capacity is the GPUs
	// of its live workers and MaxGPUsPerWorker its largest worker seen.
	Config greenq.Region
	// Series is the region's carbon series; without HasSeries (none stored)
	// the planner gets an empty one, which policy counts at the other
	// regions' mean.
	Series    forecast.Series
	HasSeries bool
	// Fallback names the fallback signal Series is (the forecast refresh's
	// "none", a provider's last good series, greenq's own forecaster), or
	// "" for the provider's own series. A plan in the region records it in
	// greenq.Plan.Signal.
	Fallback string
	// Live is set when Config.Capacity, Workers and Active are known: the
	// plan then respects capacity. Without it capacity is unbounded (a
	// submit's provisional plan).
	Live bool
	// Workers lists the GPUs of each live worker (policy.Region.Workers).
	Workers []int
	// Active are the released and running jobs, whose GPUs are taken.
	Active []*greenq.Job
}

// Plan plans jobs at now over regions, as one round. It returns each
// job's plan, in jobs' order; a plan that is not Placed (no allowed region
// is configured) is for logging only.
func (p *Planner) Plan(now time.Time, jobs []*greenq.Job, regions []Region) []greenq.Plan {
	if len(jobs) == 0 {
		return nil
	}
	in := policy.Input{Now: now, Config: p.cfg, Jobs: make([]policy.Job, len(jobs)), Regions: make([]policy.Region, len(regions))}
	for i, j := range jobs {
		in.Jobs[i] = PolicyJob(j)
	}
	fallback := map[string]string{}
	for i, r := range regions {
		in.Regions[i] = p.policyRegion(r, now)
		if r.Fallback != "" {
			fallback[r.Config.Name] = r.Fallback
		}
	}
	res := p.PlanInput(in)
	out := make([]greenq.Plan, len(res.Assignments))
	for i, a := range res.Assignments {
		pl := toPlan(a, now)
		if src, ok := fallback[a.Region]; ok {
			// Say when the plan rests on a fallback signal, not the provider's.
			pl.Signal = src
			pl.Reason += " (signal for " + a.Region + ": " + src + ")"
		}
		pl.Reason += estimateNote(jobs[i])
		out[i] = pl
	}
	return out
}

// Placed reports whether p places its job: in a region, or held under its
// price cap. A plan that is neither found no allowed region to run in.
func Placed(p greenq.Plan) bool { return p.Region != "" || p.Held }

// estimateNote says in a plan's reason when the job's duration is greenq's
// assumption rather than the user's or a measured one.
func estimateNote(j *greenq.Job) string {
	if j.EstimateSource != greenq.EstimateDefault {
		return ""
	}
	return "; duration assumed " + policy.FormatDuration(j.Duration()) + " (none given, none measured for this name)"
}

// PolicyJob maps a stored job to what the planner needs. A paused job is
// planned for what is left of its run; a planned job's plan is its Current
// (so a re-plan moves it only past policy.Config.Hysteresis).
func PolicyJob(j *greenq.Job) policy.Job {
	d := j.Duration() - DoneDuration(j)
	if d < time.Second {
		d = time.Second
	}
	pj := policy.Job{
		ID: j.ID, Group: j.Group, GPUs: j.GPUs, Duration: d, PowerW: j.PowerW,
		Earliest: j.SubmittedAt, Deadline: j.Deadline, Regions: j.Regions, Home: j.HomeRegion,
		Interruptible: j.Interruptible, MaxPriceUSDPerGPUHour: j.MaxPriceUSDPerGPUHour,
	}
	if pl := j.Plan; pl != nil && j.State == greenq.StatePlanned && !pl.Held {
		segs := make([]policy.Window, 0, max(len(pl.Segments), 1))
		for _, w := range pl.Segments {
			segs = append(segs, policy.Window{Start: w.Start, End: w.End})
		}
		if len(segs) == 0 {
			segs = append(segs, policy.Window{Start: pl.Start, End: pl.End})
		}
		pj.Current = &policy.Assignment{
			JobID: j.ID, Region: pl.Region, Segments: segs, ExpectedKWh: pl.ExpectedKWh,
			ExpectedGCO2: pl.ExpectedGCO2, ExpectedCostUSD: pl.ExpectedCostUSD, Urgent: pl.Urgent, Reason: pl.Reason,
			Baseline: policy.Baseline{Region: pl.Baseline.Region, Start: pl.Baseline.Start, ExpectedGCO2: pl.Baseline.ExpectedGCO2},
		}
	}
	return pj
}

// DoneDuration is how long j has already run in the segments it finished
// (an interruptible job paused between segments).
func DoneDuration(j *greenq.Job) time.Duration {
	var d time.Duration
	for _, s := range j.Segments {
		if s.End.After(s.Start) {
			d += s.End.Sub(s.Start)
		}
	}
	return d
}

// policyRegion maps r onto the planner's region at now: price schedule,
// PUE, series, the largest job a worker there runs and, when live, the
// live workers' sizes and the GPUs released and running jobs hold.
func (p *Planner) policyRegion(r Region, now time.Time) policy.Region {
	c := r.Config
	pr := policy.Region{Name: c.Name, PUE: c.PUE, Price: priceSchedule(c), MaxJobGPUs: max(c.MaxGPUsPerWorker, 0), Series: r.Series}
	if !r.HasSeries {
		pr.Series = forecast.Series{Region: c.Name, Signal: forecast.SignalAverage}
	}
	if r.Live {
		pr.Capacity, pr.Workers = c.Capacity, r.Workers
		pr.Busy = busy(r.Active, c.Name, now, p.cfg.Slot)
	}
	return pr
}

// priceSchedule maps a region's GPU price and time-of-use steps.
func priceSchedule(r greenq.Region) policy.PriceSchedule {
	ps := policy.PriceSchedule{USDPerGPUHour: r.GPUPriceUSDPerHour}
	for _, st := range r.PriceSchedule {
		ps.TimeOfUse = append(ps.TimeOfUse, policy.TimeOfUsePrice{FromHour: st.FromHour, ToHour: st.ToHour, USDPerGPUHour: st.USDPerGPUHour})
	}
	return ps
}

// busy returns the GPUs released and running jobs hold in region: from
// their start (or now) for their estimated duration, and at least one slot
// past now for a job running over its estimate.
func busy(active []*greenq.Job, region string, now time.Time, slot time.Duration) []policy.Usage {
	var out []policy.Usage
	for _, j := range active {
		reg, start := "", now
		switch {
		case j.Run != nil && j.State == greenq.StateRunning:
			reg, start = j.Run.Region, j.Run.StartedAt
		case j.Plan != nil:
			reg = j.Plan.Region
			if j.Plan.Start.After(now) {
				start = j.Plan.Start
			}
		}
		if reg != region {
			continue
		}
		end := start.Add(j.Duration() - DoneDuration(j))
		if min := now.Add(slot); end.Before(min) {
			end = min
		}
		out = append(out, policy.Usage{Start: start, End: end, GPUs: j.GPUs})
	}
	return out
}

// toPlan turns an assignment into the plan stored on the job.
func toPlan(a policy.Assignment, now time.Time) greenq.Plan {
	p := greenq.Plan{
		Region: a.Region, Start: a.Start().UTC(), End: a.End().UTC(),
		ExpectedGCO2: a.ExpectedGCO2, ExpectedCostUSD: a.ExpectedCostUSD, ExpectedKWh: a.ExpectedKWh,
		Reason: a.Reason, Urgent: a.Urgent, Held: a.Held, PlannedAt: now.UTC(),
		Baseline: greenq.Baseline{Region: a.Baseline.Region, Start: a.Baseline.Start.UTC(), ExpectedGCO2: a.Baseline.ExpectedGCO2,
			ExpectedCostUSD: a.Baseline.ExpectedCostUSD},
		SavedByWaitingGCO2: a.SavedByWaitingGCO2, SavedByMovingGCO2: a.SavedByMovingGCO2,
	}
	if p.Held {
		// No window under the job's price cap: not to be released.
		p.Start, p.End = time.Time{}, time.Time{}
		return p
	}
	if p.Start.IsZero() {
		// No window at all: release at once.
		p.Start, p.End, p.Urgent = now.UTC(), now.UTC(), true
	}
	if len(a.Segments) > 1 {
		for _, w := range a.Segments {
			p.Segments = append(p.Segments, greenq.Window{Start: w.Start.UTC(), End: w.End.UTC()})
		}
	}
	for _, alt := range a.Alternatives {
		p.Alternatives = append(p.Alternatives, greenq.Alternative{Region: alt.Region, Start: alt.Start.UTC(),
			ExpectedGCO2: alt.ExpectedGCO2, ExpectedCostUSD: alt.ExpectedCostUSD, Rejected: alt.Rejected})
	}
	return p
}

// ReleaseAt is policy.ReleaseAt for a stored plan: when a job planned as p
// is to be released, given now (now itself once due). A held plan is
// never released; callers check Held first.
func ReleaseAt(p *greenq.Plan, now time.Time) time.Time {
	var w [1]policy.Window
	w[0] = policy.Window{Start: p.Start, End: p.End}
	return policy.ReleaseAt(policy.Assignment{Urgent: p.Urgent, Segments: w[:]}, now)
}

// PlanInput plans a round given in the planner's own terms, with the
// adapter's configuration (in.Config is replaced by it). It is the entry
// for callers whose jobs are not greenq's stored jobs — the back-test
// replays sub-second durations and in-memory plans — so that every plan is
// made through the adapter and its one configuration.
func (p *Planner) PlanInput(in policy.Input) policy.Result {
	in.Config = p.cfg
	return policy.Plan(in)
}
