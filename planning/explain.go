package planning

import (
	"context"
	"fmt"
	"time"

	"github.com/greenq/greenq"
)

// Facts reads the regions and their series, for a job explained before
// any plan was made for it. *queue.Store implements it.
type Facts interface {
	// Regions returns the configured regions.
	Regions(ctx context.Context) ([]greenq.Region, error)
	SeriesReader
}

// Option is one region and window weighed for a job.
type Option struct {
	Region string
	// Start and End are zero for a region with no window at all.
	Start, End      time.Time
	ExpectedGCO2    float64
	ExpectedCostUSD float64
	// Rejected says why the option lost; empty for the chosen one.
	Rejected string
}

// Explanation sets a job's plan against what the planner weighed for it.
type Explanation struct {
	// Chosen is the job's plan as an option; nil when the job is held
	// (no window under its price cap) or has no region to run in.
	Chosen *Option
	// Alternatives are the options the planner weighed and rejected when it
	// made the plan, ending with the run-now baseline.
	Alternatives []Option
	// Why is the plan's reason.
	Why string
}

// BaselinePrefix starts the Rejected of the run-now baseline's option.
const BaselinePrefix = "run-now baseline"

// Explain explains job j's plan at now from the alternatives the planner
// stored with it, so Chosen is the stored plan and the baseline its
// baseline. A job with no plan yet is planned at now over the regions facts
// holds, without capacity (as a submit's provisional plan), and Why says
// so; facts is read only then.
func (p *Planner) Explain(ctx context.Context, now time.Time, j *greenq.Job, facts Facts) (Explanation, error) {
	pl, why := j.Plan, ""
	if pl == nil {
		regions, err := ReadRegions(ctx, facts)
		if err != nil {
			return Explanation{}, fmt.Errorf("explain: %w", err)
		}
		plans := p.Plan(now, []*greenq.Job{j}, regions)
		if len(plans) == 0 || !Placed(plans[0]) {
			return Explanation{Alternatives: []Option{}, Why: "no allowed region is configured"}, nil
		}
		pl, why = &plans[0], "not planned yet: this is the option the planner would pick now"
	}
	return explainPlan(pl, why, PolicyJob(j).Duration), nil
}

// ReadRegions reads every region of facts with its series, for a plan
// without capacity.
func ReadRegions(ctx context.Context, facts Facts) ([]Region, error) {
	regs, err := facts.Regions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read regions: %w", err)
	}
	out := make([]Region, len(regs))
	for i, r := range regs {
		if out[i], err = ReadRegion(ctx, facts, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// explainPlan builds the explanation of plan pl of a job that needs dur
// more; why, when set, replaces the plan's reason.
func explainPlan(pl *greenq.Plan, why string, dur time.Duration) Explanation {
	x := Explanation{Alternatives: []Option{}, Why: why}
	switch {
	case x.Why != "":
	case pl.Provisional:
		x.Why = "provisional, until the next planning round weighs capacity: " + pl.Reason
	default:
		x.Why = pl.Reason
	}
	run := runLength(pl)
	if run <= 0 {
		run = dur // a held plan has no window
	}
	if !pl.Held {
		x.Chosen = &Option{Region: pl.Region, Start: pl.Start, End: pl.End, ExpectedGCO2: pl.ExpectedGCO2, ExpectedCostUSD: pl.ExpectedCostUSD}
	}
	b := pl.Baseline
	base := Option{Region: b.Region, Start: b.Start, End: b.Start.Add(run), ExpectedGCO2: b.ExpectedGCO2,
		ExpectedCostUSD: b.ExpectedCostUSD, Rejected: BaselinePrefix}
	for _, alt := range pl.Alternatives {
		if alt.Rejected == "" {
			continue // the winner: Chosen
		}
		if alt.Region == b.Region && alt.Start.Sub(b.Start).Abs() < time.Second {
			// The baseline row stands for its region's run-now option.
			base.Rejected = BaselinePrefix + ": " + alt.Rejected + by(base, x.Chosen)
			continue
		}
		o := Option{Region: alt.Region, Start: alt.Start, ExpectedGCO2: alt.ExpectedGCO2, ExpectedCostUSD: alt.ExpectedCostUSD,
			Rejected: alt.Rejected}
		if !alt.Start.IsZero() {
			o.End = alt.Start.Add(run)
			o.Rejected += by(o, x.Chosen)
		}
		x.Alternatives = append(x.Alternatives, o)
	}
	if c := x.Chosen; base.Rejected == BaselinePrefix && c != nil {
		if c.Region == base.Region && c.Start.Sub(base.Start).Abs() < time.Second {
			base.Rejected += ": the chosen option"
		} else {
			base.Rejected += by(base, c)
		}
	}
	if b.Region != "" {
		x.Alternatives = append(x.Alternatives, base)
	}
	return x
}

// runLength is how long the planned run takes: its segments, else its
// window.
func runLength(pl *greenq.Plan) time.Duration {
	if len(pl.Segments) == 0 {
		return max(pl.End.Sub(pl.Start), 0)
	}
	var d time.Duration
	for _, w := range pl.Segments {
		d += w.End.Sub(w.Start)
	}
	return d
}

// by says how o compares with the chosen option, as a parenthesis after
// the planner's verdict; "" when it is not worse on carbon.
func by(o Option, chosen *Option) string {
	if chosen == nil {
		return ""
	}
	d := o.ExpectedGCO2 - chosen.ExpectedGCO2
	switch {
	case d > 0.05 && chosen.ExpectedGCO2 > 0:
		return fmt.Sprintf(" (+%.1f gCO2e, +%.0f%%)", d, 100*d/chosen.ExpectedGCO2)
	case d > 0.05:
		return fmt.Sprintf(" (+%.1f gCO2e)", d)
	}
	return ""
}
