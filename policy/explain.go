package policy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// margin returns the safety margin kept before job j's deadline (see
// Config.SafetyMargin).
func margin(cfg Config, j Job, earliest time.Time) time.Duration {
	if cfg.SafetyMargin > 0 {
		return cfg.SafetyMargin
	}
	m := min(2*cfg.Slot, DefaultSafetyMargin)
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
// earliest start, a slot boundary or a latest start) and the lengths add up
// to the duration.
func (pl *planner) windows(j *jobInfo, spans []span, sl *slab) []Window {
	ws := sl.windows(len(spans))
	left := j.d
	for i, sp := range spans {
		st := pl.g.at(sp.a)
		switch sp.a {
		case j.x0:
			st = j.earliest
		case j.ls[0]:
			st = j.latest[0]
		case j.ls[1]:
			st = j.latest[1]
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

// baseline returns job j's run-now option: its home region from the
// earliest start.
func (pl *planner) baseline(j *jobInfo) cand {
	return pl.runNow(j, int(j.home))
}

// runNow returns job j's option of running in region ri from its earliest
// start, contiguously.
func (pl *planner) runNow(j *jobInfo, ri int) cand {
	return pl.evalSpans(j, ri, []span{{j.x0, j.x0 + j.ds}})
}

// split divides what option c saves against the baseline base into what
// waiting saves (c's region at once against c) and what moving saves (the
// baseline against c's region at once). They add up to base.g − c.g.
func (pl *planner) split(j *jobInfo, c, base cand) (waiting, moving float64) {
	here := base
	if c.r != base.r {
		here = pl.runNow(j, c.r)
	}
	return here.g - c.g, base.g - here.g
}

// runNowWhy says why the run-now option is not possible, or "".
func (pl *planner) runNowWhy(j *jobInfo, sc *scratch) string {
	ri := int(j.home)
	r := &pl.g.rs[ri]
	capChk, priceChk := pl.checks(j, r)
	switch {
	case !slices.Contains(j.regions, j.home):
		return "outside the job's regions"
	case j.x0 > j.ls[1]+1e-9:
		return "past deadline"
	case priceChk && !fits(j, r, nil, j.x0, j.x0+j.ds, false, true):
		return "over max price"
	case capChk && !fits(j, r, pl.freeOf(sc, j, ri), j.x0, j.x0+j.ds, true, false):
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
		Segments:        pl.windows(j, spans, &sc.slab),
		ExpectedKWh:     pl.kWh(j, c.r),
		ExpectedGCO2:    c.g,
		ExpectedCostUSD: c.cost,
		Kept:            kept,
		Baseline: Baseline{
			Region: pl.g.rs[base.r].name, Start: j.earliest,
			ExpectedGCO2: base.g, ExpectedCostUSD: base.cost,
		},
	}
	a.SavedByWaitingGCO2, a.SavedByMovingGCO2 = pl.split(j, c, base)
	nowWhy := pl.runNowWhy(j, sc)
	a.Reason = pl.reason(j, a, c, base, nowWhy, sc)
	if explain {
		a.Alternatives = pl.alternatives(j, a, c, base, nowWhy, kept, sc)
	}
}

// urgentRun picks where urgent job j runs: from its earliest start, in the
// allowed region that scores best there, preferring one with room in the
// view sc, among those whose price over the run is under the job's cap. It
// returns that option, or one with ok unset when the job has no allowed
// region or none under its cap (writeUrgent then holds it).
func (pl *planner) urgentRun(j *jobInfo, sc *scratch) cand {
	var bc cand
	if len(j.regions) == 0 {
		return bc
	}
	sp := [1]span{{j.x0, j.x0 + j.ds}}
	bestFits := false
	for _, ri := range j.regions {
		r := &pl.g.rs[ri]
		capChk, _ := pl.checks(j, r)
		// The grid's prices may not reach an urgent run from a later
		// earliest start, so any cap is checked on the schedule itself.
		if j.maxPrice > 0 && !pl.underCap(j, int(ri), j.earliest, j.earliest.Add(j.d)) {
			continue // never above the job's price cap, however urgent
		}
		f := !capChk || fits(j, r, pl.freeOf(sc, j, int(ri)), j.x0, j.x0+j.ds, true, false)
		c := pl.evalSpans(j, int(ri), sp[:])
		if !bc.ok || (f && !bestFits) || (f == bestFits && better(c.p1, c.p2, bc.p1, bc.p2)) {
			bc, bestFits = c, f
		}
	}
	return bc
}

// underCap reports whether every slot a run of job j in region ri over
// [from, to) touches is priced at or under the job's cap. It reads the
// region's schedule itself, since an urgent run may reach past the grid.
func (pl *planner) underCap(j *jobInfo, ri int, from, to time.Time) bool {
	price := pl.in.Regions[ri].Price
	for t := from.Truncate(pl.cfg.Slot); t.Before(to); t = t.Add(pl.cfg.Slot) {
		if price.At(t) > j.maxPrice {
			return false
		}
	}
	return true
}

// writeUrgent fills job j's assignment as urgent: released at once, from its
// earliest start, as option c (from urgentRun); why says what went wrong,
// "" for a deadline that cannot be met.
func (pl *planner) writeUrgent(j *jobInfo, c cand, why string, sc *scratch) {
	a := &pl.out[j.idx]
	*a = Assignment{JobID: j.job.ID, Urgent: true}
	if !c.ok && len(j.regions) > 0 && j.maxPrice > 0 {
		// Every allowed region is over the cap now and no window under it
		// fits before the deadline: hold the job rather than break the cap.
		base := pl.baseline(j)
		*a = Assignment{JobID: j.job.ID, Held: true,
			Baseline: Baseline{Region: pl.g.rs[base.r].name, Start: j.earliest, ExpectedGCO2: base.g, ExpectedCostUSD: base.cost}}
		b := append(sc.text[:0], "held: "...)
		if why == "" {
			b = append(b, "it cannot finish by the deadline, and running at once is over the price cap"...)
		} else {
			b = append(b, "no window before the deadline is under the price cap"...)
		}
		b = append(b, " of $"...)
		b = strconv.AppendFloat(b, j.maxPrice, 'f', 2, 64)
		b = append(b, "/GPU-h in any allowed region; not run above it, the job expires at its deadline unless prices drop"...)
		sc.text = b
		a.Reason = string(b)
		return
	}
	if !c.ok {
		ws := sc.slab.windows(1)
		ws[0] = Window{j.earliest, j.earliest.Add(j.d)}
		a.Segments = ws
		a.Reason = "no allowed region is configured: released at once"
		if j.tooBig {
			a.Reason = "needs " + strconv.Itoa(int(j.gpus)) + " GPUs, more than the largest worker of any allowed region: not planned"
		}
		return
	}
	sp := [1]span{{j.x0, j.x0 + j.ds}}
	base := pl.baseline(j)
	a.Region = pl.g.rs[c.r].name
	a.Segments = pl.windows(j, sp[:], &sc.slab)
	a.ExpectedKWh, a.ExpectedGCO2, a.ExpectedCostUSD = pl.kWh(j, c.r), c.g, c.cost
	a.Baseline = Baseline{Region: pl.g.rs[base.r].name, Start: j.earliest, ExpectedGCO2: base.g, ExpectedCostUSD: base.cost}
	a.SavedByWaitingGCO2, a.SavedByMovingGCO2 = pl.split(j, c, base)
	if why == "" {
		left := max(j.job.Deadline.Sub(j.earliest), 0)
		why = fmt.Sprintf("cannot finish by the deadline (needs %s, %s left)", fmtDur(j.d), fmtDur(left))
	}
	a.Reason = why + ": released at once in " + a.Region
	alts := sc.slab.alternatives(1)
	alts[0] = Alternative{Region: a.Region, Start: j.earliest, ExpectedGCO2: c.g, ExpectedCostUSD: c.cost}
	a.Alternatives = alts
}

// reason is the sentence people read: what the plan does and what it saves
// against running now. It is built in sc.text, without fmt, since every
// job gets one.
func (pl *planner) reason(j *jobInfo, a *Assignment, c, base cand, nowWhy string, sc *scratch) string {
	b := sc.text[:0]
	wait := a.Start().Sub(j.earliest)
	region := a.Region
	if a.Kept {
		b = append(b, "keep the current plan: "...)
	}
	switch {
	case len(a.Segments) > 1:
		b = append(b, "run in "...)
		b = strconv.AppendInt(b, int64(len(a.Segments)), 10)
		b = append(b, " segments over the next "...)
		b = appendDur(b, a.End().Sub(j.earliest))
		b = append(b, " in "...)
		b = append(b, region...)
	case wait < time.Second && region == a.Baseline.Region:
		b = append(b, "run now in "...)
		b = append(b, region...)
	case wait < time.Second:
		b = append(b, "run now in "...)
		b = append(b, region...)
		b = append(b, " instead of "...)
		b = append(b, a.Baseline.Region...)
	case region == a.Baseline.Region:
		b = append(b, "defer "...)
		b = appendDur(b, wait)
		b = append(b, " in "...)
		b = append(b, region...)
	default:
		b = append(b, "defer "...)
		b = appendDur(b, wait)
		b = append(b, " to "...)
		b = append(b, region...)
	}
	carbonPrice := pl.cfg.CarbonPriceUSDPerTonne > 0
	saved := base.p1 - c.p1
	nowAt := " now)"
	if region != a.Baseline.Region && (wait >= time.Second || len(a.Segments) > 1) {
		nowAt = " now in " + a.Baseline.Region + ")"
	}
	same := wait < time.Second && region == a.Baseline.Region && len(a.Segments) == 1
	// A tiny job's masses round to "0 g": say them to the hundredth of a
	// gram, and not at all when that is zero too (no "0 g vs 0 g").
	fine := math.Abs(c.g) < 0.5 && math.Abs(base.g) < 0.5
	grams := !fine || math.Abs(c.g) >= 0.005 || math.Abs(base.g) >= 0.005
	switch {
	case same && carbonPrice:
		b = append(b, ": no allowed region or window is better on cost and carbon"...)
	case same:
		b = append(b, ": no allowed region or window is cleaner"...)
	case saved > 1e-9*math.Abs(base.p1) && base.p1 > 0:
		pct := 100 * saved / base.p1
		if carbonPrice {
			b = append(b, " to cut cost and carbon by "...)
			b = appendPct(b, pct)
			b = append(b, " ("...)
			if grams {
				b = appendFineG(b, c.g, fine)
				b = append(b, ", "...)
			}
			b = append(b, '$')
			b = strconv.AppendFloat(b, c.cost, 'f', 2, 64)
			b = append(b, " vs "...)
			if grams {
				b = appendFineG(b, base.g, fine)
				b = append(b, ", "...)
			}
			b = append(b, '$')
			b = strconv.AppendFloat(b, base.cost, 'f', 2, 64)
			b = append(b, nowAt...)
		} else {
			b = append(b, " to save "...)
			b = appendPct(b, pct)
			if grams {
				b = append(b, " ("...)
				b = appendFineG(b, c.g, fine)
				b = append(b, " vs "...)
				b = appendFineG(b, base.g, fine)
				b = append(b, nowAt...)
			}
		}
		if grams && wait >= time.Second && region != a.Baseline.Region {
			// Both waiting and moving contribute: say how much each.
			b = append(b, ": waiting saves "...)
			b = appendSignedG(b, a.SavedByWaitingGCO2)
			b = append(b, ", moving "...)
			b = appendSignedG(b, a.SavedByMovingGCO2)
		}
	default:
		if grams {
			b = append(b, " ("...)
			b = appendFineG(b, c.g, fine)
			b = append(b, " vs "...)
			b = appendFineG(b, base.g, fine)
			b = append(b, nowAt...)
		}
		if nowWhy != "" {
			b = append(b, ": running now is "...)
			b = append(b, nowWhy...)
		}
	}
	if a.Kept {
		b = append(b, "; a move would gain under "...)
		b = appendPct(b, 100*pl.cfg.Hysteresis)
	}
	sc.text = b
	return string(b)
}

// alternatives lists the winner, the run-now option and each other allowed
// region's best, each with why it lost, up to Config.Alternatives runners-up.
func (pl *planner) alternatives(j *jobInfo, a *Assignment, c, base cand, nowWhy string, kept bool, sc *scratch) []Alternative {
	out := sc.slab.alternatives(2 + len(sc.perReg))[:0]
	out = append(out, Alternative{Region: a.Region, Start: a.Start(), ExpectedGCO2: c.g, ExpectedCostUSD: c.cost})
	lose := func(o cand) string {
		switch {
		case kept && better(o.p1, o.p2, c.p1, c.p2):
			return "gain under the hysteresis"
		case better(o.p1, o.p2, c.p1, c.p2):
			// Only with capacity: another job held it at this job's turn
			// and moved later.
			return "over capacity when planned"
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
		return cmp.Compare(x.ExpectedGCO2, y.ExpectedGCO2)
	})
	if n := 1 + pl.cfg.Alternatives; len(out) > n {
		out = out[:n]
	}
	out = out[:len(out):len(out)]
	sc.slab.keepAlternatives(len(out))
	return out
}

// fmtDur writes d the way people say it: 14h, 2h30m, 45m, 20s.
func fmtDur(d time.Duration) string { return string(appendDur(nil, d)) }

// FormatDuration writes d as plan reasons do: 14h, 2h30m, 45m, 20s.
func FormatDuration(d time.Duration) string { return fmtDur(d) }

func appendDur(b []byte, d time.Duration) []byte {
	switch {
	case d < time.Minute:
		b = strconv.AppendInt(b, int64(d.Round(time.Second)/time.Second), 10)
		return append(b, 's')
	case d < time.Hour:
		b = strconv.AppendInt(b, int64(d.Round(time.Minute)/time.Minute), 10)
		return append(b, 'm')
	}
	d = d.Round(time.Minute)
	h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
	b = strconv.AppendInt(b, h, 10)
	b = append(b, 'h')
	if m == 0 {
		return b
	}
	if m < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, m, 10)
	return append(b, 'm')
}

// appendG writes a mass of CO2e with a unit that keeps it short.
func appendG(b []byte, g float64) []byte {
	switch {
	case g >= 1e6:
		b = strconv.AppendFloat(b, g/1e6, 'f', 2, 64)
		return append(b, " t"...)
	case g >= 1e4:
		b = strconv.AppendFloat(b, g/1e3, 'f', 1, 64)
		return append(b, " kg"...)
	}
	b = strconv.AppendFloat(b, g, 'f', 0, 64)
	return append(b, " g"...)
}

// appendFineG is appendG, or with two decimals when fine (masses under
// half a gram, which appendG writes as 0 g).
func appendFineG(b []byte, g float64, fine bool) []byte {
	if !fine {
		return appendG(b, g)
	}
	b = strconv.AppendFloat(b, g, 'f', 2, 64)
	return append(b, " g"...)
}

// appendSignedG is appendG for a mass that may be negative.
func appendSignedG(b []byte, g float64) []byte {
	if g < 0 {
		return appendG(append(b, '-'), -g)
	}
	return appendG(b, g)
}

func appendPct(b []byte, p float64) []byte {
	if p < 10 {
		b = strconv.AppendFloat(b, p, 'f', 1, 64)
	} else {
		b = strconv.AppendFloat(b, p, 'f', 0, 64)
	}
	return append(b, '%')
}

// slab hands out the Segments and Alternatives of many assignments from a
// few large arrays, so a round allocates per chunk, not per job. Each piece
// is capped at its length, so appending to one never reaches its neighbour.
type slab struct {
	win []Window
	alt []Alternative
	// chunk is how many pieces each allocation holds: slabChunk for big
	// rounds, fewer for a round of a few jobs (a submit's provisional plan).
	chunk int
}

const slabChunk = 1024

func (s *slab) windows(n int) []Window {
	if len(s.win) < n {
		s.win = make([]Window, max(n, s.size()))
	}
	w := s.win[:n:n]
	s.win = s.win[n:]
	return w
}

// alternatives returns room for up to n; the caller trims it.
func (s *slab) alternatives(n int) []Alternative {
	if len(s.alt) < n {
		s.alt = make([]Alternative, max(n, s.size()))
	}
	return s.alt[:n:n]
}

func (s *slab) size() int {
	if s.chunk > 0 {
		return s.chunk
	}
	return slabChunk
}

// keepAlternatives marks the first n of the last alternatives(…) as used.
func (s *slab) keepAlternatives(n int) { s.alt = s.alt[n:] }
