package planning

import (
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/policy"
)

// Pauses returns the ids of the running interruptible jobs among running
// that are to pause at now: re-planned for what they have left, with the
// rest of the segment they run in (then their later windows) as their
// current plan, the best plan no longer goes on at once in the region they
// run in. A job is re-decided only once its segment has run
// policy.Config.MinSegment, and only inside the window it was planned to
// run in. regions are the round's; the candidates' own GPUs are not
// counted as taken there.
//
// This is the back-test's hourly re-decision of a running interruptible
// job (policy/backtest): a pause costs the job a checkpoint and a resume,
// so the current plan is kept unless a better one beats it by
// policy.Config.Hysteresis.
func (p *Planner) Pauses(now time.Time, running []*greenq.Job, regions []Region) []string {
	var jobs []policy.Job
	var runsIn []string // the region each of jobs runs in
	for _, j := range running {
		if pj, ok := p.runningJob(now, j); ok {
			jobs, runsIn = append(jobs, pj), append(runsIn, j.Run.Region)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	ids := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		ids[j.ID] = true
	}
	in := policy.Input{Now: now, Jobs: jobs, Regions: make([]policy.Region, len(regions))}
	for i, r := range regions {
		var others []*greenq.Job
		for _, a := range r.Active {
			if !ids[a.ID] {
				others = append(others, a)
			}
		}
		r.Active = others
		in.Regions[i] = p.policyRegion(r, now)
	}
	var out []string
	for i, a := range p.PlanInput(in).Assignments {
		if a.Held || a.Urgent || a.Region == "" {
			continue // nothing better to go to: run on
		}
		if a.Region != runsIn[i] || a.Start().Sub(now) >= time.Second {
			out = append(out, a.JobID)
		}
	}
	return out
}

// runningJob returns running job j as the planner re-decides it at now,
// and whether it is to be: interruptible, running for at least
// MinSegment inside a planned window that ends after now, with more than
// a second left to run.
func (p *Planner) runningJob(now time.Time, j *greenq.Job) (policy.Job, bool) {
	if !j.Interruptible || j.State != greenq.StateRunning || j.Run == nil || j.Plan == nil || j.Plan.Held {
		return policy.Job{}, false
	}
	ran := now.Sub(j.Run.StartedAt)
	if ran < p.cfg.MinSegment {
		return policy.Job{}, false
	}
	windows := j.Plan.Segments
	if len(windows) == 0 {
		windows = []greenq.Window{{Start: j.Plan.Start, End: j.Plan.End}}
	}
	segs := []policy.Window(nil)
	for _, w := range windows {
		switch {
		case len(segs) > 0:
			segs = append(segs, policy.Window{Start: w.Start, End: w.End})
		case !w.Start.After(now) && w.End.After(now):
			segs = append(segs, policy.Window{Start: now, End: w.End})
		}
	}
	left := j.Duration() - DoneDuration(j) - ran
	if len(segs) == 0 || left <= time.Second {
		return policy.Job{}, false // running past its plan: let it finish
	}
	// The windows were planned for the whole run; the job started in
	// them late or early by as much as its release took, so the last one
	// takes up the difference (the planner keeps a current plan only of
	// the job's length).
	last := &segs[len(segs)-1]
	last.End = last.End.Add(left - windowsLength(segs))
	pj := PolicyJob(j)
	pj.Duration, pj.Earliest = left, now
	if last.End.After(last.Start) {
		pj.Current = &policy.Assignment{JobID: j.ID, Region: j.Run.Region, Segments: segs}
	}
	return pj, true
}

func windowsLength(ws []policy.Window) time.Duration {
	var d time.Duration
	for _, w := range ws {
		d += w.End.Sub(w.Start)
	}
	return d
}
