package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// margin returns the safety margin kept before job j's deadline (see
// Config.SafetyMargin).
func margin(cfg Config, j Job, earliest time.Time) time.Duration {
	if cfg.SafetyMargin > 0 {
		return cfg.SafetyMargin
	}
	m := 2 * cfg.Slot
	if p := j.Duration / 10; p > m {
		m = p
	}
	if slack := j.Deadline.Sub(earliest) - j.Duration; m > slack/2 {
		m = slack / 2
	}
	return max(m, 0)
}

// kWh returns job j's expected facility energy in region ri.
func (pl *planner) kWh(j *jobInfo, ri int) float64 {
	return float64(j.gpus) * j.power / 1000 * j.d.Hours() * pl.g.rs[ri].pue
}

// windows turns spans into times: the first starts at its exact time (the
// earliest start or a slot boundary) and the lengths add up to the duration.
func (pl *planner) windows(j *jobInfo, spans []span) []Window {
	ws := make([]Window, len(spans))
	left := j.d
	for i, sp := range spans {
		st := pl.g.at(sp.a)
		if sp.a == j.x0 {
			st = j.earliest
		}
		d := time.Duration(math.Round((sp.b - sp.a) * float64(pl.g.slot)))
		if i == len(spans)-1 || d > left {
			d = left
		}
		ws[i] = Window{Start: st, End: st.Add(d)}
		left -= d
	}
	return ws
}

// baseline returns job j's run-now option: its first allowed region from
// the earliest start.
func (pl *planner) baseline(j *jobInfo) cand {
	return pl.evalSpans(j, int(j.regions[0]), []span{{j.x0, j.x0 + j.ds}})
}

// runNowWhy says why the run-now option is not possible, or "".
func (pl *planner) runNowWhy(j *jobInfo) string {
	ri := int(j.regions[0])
	r := &pl.g.rs[ri]
	capChk, priceChk := pl.checks(j, r)
	switch {
	case j.x0 > j.ls[1]+1e-9:
		return "past deadline"
	case priceChk && !fits(j, r, j.x0, j.x0+j.ds, false, true):
		return "over max price"
	case capChk && !fits(j, r, j.x0, j.x0+j.ds, true, false):
		return "over capacity"
	}
	return ""
}

// write fills job j's assignment with option c over spans.
func (pl *planner) write(j *jobInfo, c cand, spans []span, kept bool, sc *scratch, explain bool) {
	a := &pl.out[j.idx]
	base := pl.baseline(j)
	*a = Assignment{
		JobID:           j.job.ID,
		Region:          pl.g.rs[c.r].name,
		Segments:        pl.windows(j, spans),
		ExpectedKWh:     pl.kWh(j, c.r),
		ExpectedGCO2:    c.g,
		ExpectedCostUSD: c.cost,
		Kept:            kept,
		Baseline: Baseline{
			Region: pl.g.rs[base.r].name, Start: j.earliest,
			ExpectedGCO2: base.g, ExpectedCostUSD: base.cost,
		},
	}
	nowWhy := pl.runNowWhy(j)
	a.Reason = pl.reason(j, a, c, base, nowWhy)
	if explain {
		a.Alternatives = pl.alternatives(j, a, c, base, nowWhy, kept, sc)
	}
}

// writeUrgent fills job j's assignment as urgent: start at the earliest
// start in the allowed region that scores best there, preferring one with
// room; it returns that region, or -1 when the job has none.
func (pl *planner) writeUrgent(j *jobInfo, why string, capacity bool) int {
	a := &pl.out[j.idx]
	*a = Assignment{JobID: j.job.ID, Urgent: true}
	if len(j.regions) == 0 {
		a.Segments = []Window{{j.earliest, j.earliest.Add(j.d)}}
		a.Reason = "no allowed region is configured: released at once"
		return -1
	}
	sp := []span{{j.x0, j.x0 + j.ds}}
	var bc cand
	bestFits := false
	for _, ri := range j.regions {
		r := &pl.g.rs[ri]
		capChk, priceChk := pl.checks(j, r)
		f := fits(j, r, j.x0, j.x0+j.ds, capChk, priceChk)
		c := pl.evalSpans(j, int(ri), sp)
		if !bc.ok || (f && !bestFits) || (f == bestFits && better(c.p1, c.p2, bc.p1, bc.p2)) {
			bc, bestFits = c, f
		}
	}
	base := pl.baseline(j)
	a.Region = pl.g.rs[bc.r].name
	a.Segments = pl.windows(j, sp)
	a.ExpectedKWh, a.ExpectedGCO2, a.ExpectedCostUSD = pl.kWh(j, bc.r), bc.g, bc.cost
	a.Baseline = Baseline{Region: pl.g.rs[base.r].name, Start: j.earliest, ExpectedGCO2: base.g, ExpectedCostUSD: base.cost}
	if why == "" {
		left := max(j.job.Deadline.Sub(j.earliest), 0)
		why = fmt.Sprintf("cannot finish by the deadline (needs %s, %s left)", fmtDur(j.d), fmtDur(left))
	}
	a.Reason = why + ": released at once in " + a.Region
	a.Alternatives = []Alternative{{Region: a.Region, Start: j.earliest, ExpectedGCO2: bc.g, ExpectedCostUSD: bc.cost}}
	return bc.r
}

// reason is the sentence people read: what the plan does and what it saves
// against running now.
func (pl *planner) reason(j *jobInfo, a *Assignment, c, base cand, nowWhy string) string {
	var b strings.Builder
	wait := a.Start().Sub(j.earliest)
	region := a.Region
	switch {
	case a.Kept:
		b.WriteString("keep the current plan: ")
	}
	switch {
	case len(a.Segments) > 1:
		fmt.Fprintf(&b, "run in %d segments over the next %s in %s", len(a.Segments), fmtDur(a.End().Sub(j.earliest)), region)
	case wait < time.Second && region == a.Baseline.Region:
		b.WriteString("run now in " + region)
	case wait < time.Second:
		fmt.Fprintf(&b, "run now in %s instead of %s", region, a.Baseline.Region)
	case region == a.Baseline.Region:
		fmt.Fprintf(&b, "defer %s in %s", fmtDur(wait), region)
	default:
		fmt.Fprintf(&b, "defer %s to %s", fmtDur(wait), region)
	}
	carbonPrice := pl.cfg.CarbonPriceUSDPerTonne > 0
	saved := base.p1 - c.p1
	same := wait < time.Second && region == a.Baseline.Region && len(a.Segments) == 1
	switch {
	case same && carbonPrice:
		b.WriteString(": no allowed region or window is better on cost and carbon")
	case same:
		b.WriteString(": no allowed region or window is cleaner")
	case saved > 1e-9*math.Abs(base.p1) && base.p1 > 0:
		pct := 100 * saved / base.p1
		if carbonPrice {
			fmt.Fprintf(&b, " to cut cost and carbon by %s (%s, $%.2f vs %s, $%.2f now)", fmtPct(pct), fmtG(c.g), c.cost, fmtG(base.g), base.cost)
		} else {
			fmt.Fprintf(&b, " to save %s (%s vs %s now)", fmtPct(pct), fmtG(c.g), fmtG(base.g))
		}
	case nowWhy != "":
		fmt.Fprintf(&b, " (%s vs %s now): running now is %s", fmtG(c.g), fmtG(base.g), nowWhy)
	default:
		fmt.Fprintf(&b, " (%s vs %s now)", fmtG(c.g), fmtG(base.g))
	}
	if a.Kept {
		fmt.Fprintf(&b, "; a move would gain under %s", fmtPct(100*pl.cfg.Hysteresis))
	}
	return b.String()
}

// alternatives lists the winner, the run-now option and each other allowed
// region's best, each with why it lost, up to Config.Alternatives runners-up.
func (pl *planner) alternatives(j *jobInfo, a *Assignment, c, base cand, nowWhy string, kept bool, sc *scratch) []Alternative {
	out := make([]Alternative, 0, min(1+pl.cfg.Alternatives, 2+len(sc.perReg)))
	out = append(out, Alternative{Region: a.Region, Start: a.Start(), ExpectedGCO2: c.g, ExpectedCostUSD: c.cost})
	lose := func(o cand) string {
		switch {
		case kept && better(o.p1, o.p2, c.p1, c.p2):
			return "gain under the hysteresis"
		case pl.cfg.CarbonPriceUSDPerTonne > 0 && o.p1 > c.p1+1e-9*math.Abs(c.p1):
			return "higher cost and carbon"
		case pl.cfg.CarbonPriceUSDPerTonne > 0:
			return "more gCO2e"
		case o.p1 > c.p1+1e-9*math.Abs(c.p1):
			return "more gCO2e"
		default:
			return "higher cost or later"
		}
	}
	isWinner := base.r == c.r && math.Abs(a.Start().Sub(j.earliest).Seconds()) < 1e-3 && len(a.Segments) == 1
	if !isWinner {
		why := nowWhy
		if why == "" {
			why = lose(base)
		}
		out = append(out, Alternative{Region: a.Baseline.Region, Start: j.earliest, ExpectedGCO2: base.g, ExpectedCostUSD: base.cost, Rejected: why})
	}
	rest := len(out)
	for _, o := range sc.perReg {
		if o.ok && o.r == c.r && !kept {
			continue
		}
		alt := Alternative{Region: pl.g.rs[o.r].name, Rejected: o.why}
		if o.ok {
			alt.Start, alt.ExpectedGCO2, alt.ExpectedCostUSD = pl.g.at(o.x), o.g, o.cost
			if o.x == j.x0 {
				alt.Start = j.earliest
			}
			if o.r == c.r && alt.Start.Equal(a.Start()) || !isWinner && o.r == base.r && o.x == j.x0 {
				continue
			}
			alt.Rejected = lose(o)
		}
		out = append(out, alt)
	}
	tail := out[rest:]
	slices.SortStableFunc(tail, func(x, y Alternative) int {
		if (x.Start.IsZero()) != (y.Start.IsZero()) {
			if x.Start.IsZero() {
				return 1
			}
			return -1
		}
		return cmpF(x.ExpectedGCO2, y.ExpectedGCO2)
	})
	if n := 1 + pl.cfg.Alternatives; len(out) > n {
		out = out[:n:n]
	}
	return out
}

// fmtDur writes d the way people say it: 14h, 2h30m, 45m, 20s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	if m == 0 {
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%02dm", h, m)
}

// fmtG writes a mass of CO2e with a unit that keeps it short.
func fmtG(g float64) string {
	switch {
	case g >= 1e6:
		return fmt.Sprintf("%.2f t", g/1e6)
	case g >= 1e4:
		return fmt.Sprintf("%.1f kg", g/1e3)
	}
	return fmt.Sprintf("%.0f g", g)
}

func fmtPct(p float64) string {
	if p < 10 {
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}
