package policy

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Plan decides a region and window (or run segments) for every job in
// in.Jobs and returns them in input order. It is a pure, deterministic
// function of its input; it may use several goroutines, which never changes
// the result.
//
// # Objective
//
// Each option is scored by its expected emissions, energy × the
// time-weighted mean intensity of the region's series over the run, where
// energy = GPUs × per-GPU power × hours × PUE; cost (GPUs × the time-of-use
// price integrated over the run) breaks ties. With
// Config.CarbonPriceUSDPerTonne > 0 the score is cost + price × tCO2e and
// emissions break ties. Where a region's series says nothing about a slot,
// the slot counts at that region's mean over the rest of the series; a
// region with no signal at all counts at the mean of the regions that have
// one, so missing data neither favours nor excludes a region and never fails
// a job. A region-slot priced above the job's MaxPriceUSDPerGPUHour is not
// used.
//
// # Windows and deadlines
//
// Runs start at max(now, Earliest) or at a slot boundary after it, and end
// by the deadline less the safety margin (Config.SafetyMargin). When nothing
// fits with the margin, the planner drops the margin but still ends by the
// deadline. When nothing ends by the deadline at all (too late, or every
// window is over capacity or the price cap) the job is Urgent: it starts at
// max(now, Earliest) in its best allowed region and its Reason says why. An
// interruptible job may instead run as several segments in one region, each
// at least Config.MinSegment long (a job shorter than two of them runs in
// one piece); it gets them only when they beat its best single run.
//
// # Capacity
//
// Without capacity limits every job gets its best option independently (in
// parallel). When some region has a Capacity, jobs are ordered by slack,
// least first (the trials of a sweep, jobs sharing Group, next to each other
// at the slack of their tightest trial), and:
//
//  1. Greedy: in that order each job takes its best option that fits around
//     what the jobs before it took. Trials of a sweep therefore spread over
//     the greenest free windows and regions instead of stacking into one
//     slot. Since later jobs only take capacity, each job's choice stays its
//     best response to the final plan.
//  2. Fallback, only when step 1 left some job with no window before its
//     deadline: start again and, in the same order, reserve each job its
//     current plan if it fits, else its earliest window that fits (as soon
//     as possible, which leaves later windows to jobs with later
//     deadlines); then, up to Config.Passes times, let each job hand back
//     its reservation and take the best option around everyone else's.
//     A job can always take back its own reservation, so these passes never
//     make a job late, and each move strictly lowers the mover's score
//     without touching anyone else's. The plan with fewer urgent jobs wins,
//     step 1's on a tie.
//
// This guarantees: no region-slot is ever planned past its free capacity
// (Capacity minus Busy; only Urgent jobs, which start at once, may exceed
// it); and no more jobs are left urgent for want of capacity than the
// as-soon-as-possible reservation in slack order leaves. It does not
// guarantee the least total score: that is a hard packing problem.
//
// # Stability
//
// A job whose Current plan is still valid (allowed region, not started
// before now, same duration, ending by the deadline less the margin, within
// capacity and price cap) keeps it unless the best option beats its score
// by more than Config.Hysteresis; such assignments have Kept set.
func Plan(in Input) Result {
	pl := newPlanner(in)
	if len(in.Jobs) == 0 {
		return Result{Assignments: []Assignment{}}
	}
	if pl.bounded() {
		pl.planBounded()
	} else {
		pl.planFree()
	}
	return Result{Assignments: pl.out}
}

// jobInfo is one job in grid terms.
type jobInfo struct {
	idx           int
	job           *Job
	gpus          int32
	power         float64
	d             time.Duration
	ds            float64 // duration in slots
	dq            int     // whole slots in the duration
	fr            float64 // fraction of a slot left over
	occ           int     // slots an aligned run touches
	kslots        int     // slots an aligned segmented run needs
	earliest      time.Time
	x0            float64    // earliest start position
	k0            int        // first slot boundary at or after x0
	ls            [2]float64 // latest start: with margin, without
	regions       []int32
	maxPrice      float64
	interruptible bool
	slack         float64
	curR          int // region of a valid Current, else -1
	curSpans      []span
}

type planner struct {
	in     Input
	cfg    Config
	g      *grid
	jobs   []jobInfo
	out    []Assignment
	minSeg int
}

func newPlanner(in Input) *planner {
	cfg := in.Config.WithDefaults()
	pl := &planner{in: in, cfg: cfg}
	pl.minSeg = max(1, int(math.Ceil(float64(cfg.MinSegment)/float64(cfg.Slot)-1e-9)))
	pl.out = make([]Assignment, len(in.Jobs))
	pl.jobs = make([]jobInfo, len(in.Jobs))
	origin := in.Now.Truncate(cfg.Slot)
	pos := func(t time.Time) float64 { return float64(t.Sub(origin)) / float64(cfg.Slot) }
	names := make(map[string]int32, len(in.Regions))
	for i, r := range in.Regions {
		if _, dup := names[r.Name]; !dup {
			names[r.Name] = int32(i)
		}
	}
	pool := make([]int32, 0, len(in.Jobs))
	last := in.Now
	maxRun := 1
	for i := range in.Jobs {
		jb := &in.Jobs[i]
		j := &pl.jobs[i]
		j.idx, j.job = i, jb
		j.gpus = int32(min(max(jb.GPUs, 1), unbounded))
		j.power = jb.PowerW
		if j.power <= 0 {
			j.power = cfg.DefaultPowerW
		}
		j.d = max(jb.Duration, time.Second)
		j.ds = float64(j.d) / float64(cfg.Slot)
		j.dq = int(j.d / cfg.Slot)
		j.fr = float64(j.d%cfg.Slot) / float64(cfg.Slot)
		j.occ = j.dq
		if j.fr > 0 {
			j.occ++
		}
		j.kslots = j.occ
		j.earliest = in.Now
		if jb.Earliest.After(j.earliest) {
			j.earliest = jb.Earliest
		}
		j.x0 = pos(j.earliest)
		j.k0 = int(math.Ceil(j.x0 - 1e-9))
		if math.Abs(j.x0-float64(j.k0)) < 1e-9 {
			j.x0 = float64(j.k0)
		}
		m := margin(cfg, *jb, j.earliest)
		j.ls[0] = pos(jb.Deadline.Add(-m - j.d))
		j.ls[1] = pos(jb.Deadline.Add(-j.d))
		j.slack = j.ls[1] - j.x0
		j.maxPrice = jb.MaxPriceUSDPerGPUHour
		j.interruptible = jb.Interruptible
		start := len(pool)
		if len(jb.Regions) == 0 {
			for k, r := range in.Regions {
				if names[r.Name] == int32(k) {
					pool = append(pool, int32(k))
				}
			}
		} else {
			for _, name := range jb.Regions {
				if k, ok := names[name]; ok && !slices.Contains(pool[start:], k) {
					pool = append(pool, k)
				}
			}
		}
		j.regions = pool[start:len(pool):len(pool)]
		if s := jb.Deadline.Add(-j.d); s.After(last) {
			last = s
		}
		maxRun = max(maxRun, j.occ)
		j.curR = -1
	}
	pl.g = buildGrid(in, cfg, last, maxRun)
	for i := range pl.jobs {
		pl.validCurrent(&pl.jobs[i])
	}
	return pl
}

// validCurrent records job j's Current plan when it still holds apart from
// capacity: allowed region, same duration, not before the earliest start,
// ending by the deadline less the margin, segments long enough, under the
// price cap.
func (pl *planner) validCurrent(j *jobInfo) {
	cur := j.job.Current
	if cur == nil || cur.Urgent || len(cur.Segments) == 0 {
		return
	}
	if len(cur.Segments) > 1 && !j.interruptible {
		return
	}
	ri, ok := pl.g.byName[cur.Region]
	if !ok || !slices.Contains(j.regions, int32(ri)) {
		return
	}
	var total time.Duration
	prev := j.earliest
	spans := make([]span, 0, len(cur.Segments))
	for _, w := range cur.Segments {
		if w.Start.Before(prev) || !w.End.After(w.Start) {
			return
		}
		if len(cur.Segments) > 1 && w.End.Sub(w.Start) < pl.cfg.MinSegment {
			return
		}
		total += w.End.Sub(w.Start)
		prev = w.End
		spans = append(spans, span{pl.g.pos(w.Start), pl.g.pos(w.End)})
	}
	if d := total - j.d; d > time.Second || d < -time.Second {
		return
	}
	if spans[len(spans)-1].b > j.ls[0]+j.ds+1e-9 {
		return
	}
	r := &pl.g.rs[ri]
	if _, priceChk := pl.checks(j, r); priceChk {
		for _, sp := range spans {
			if !fits(j, r, sp.a, sp.b, false, true) {
				return
			}
		}
	}
	j.curR, j.curSpans = ri, spans
}

// currentFits reports whether job j's valid Current plan fits the capacity
// left now.
func (pl *planner) currentFits(j *jobInfo) bool {
	if j.curR < 0 {
		return false
	}
	r := &pl.g.rs[j.curR]
	if !r.bounded {
		return true
	}
	for _, sp := range j.curSpans {
		if !fits(j, r, sp.a, sp.b, true, false) {
			return false
		}
	}
	return true
}

// keepCurrent reports whether a job whose Current plan scores cur should
// stay on it rather than move to best.
func (pl *planner) keepCurrent(cur, best cand) bool {
	if !best.ok {
		return true
	}
	return !(best.p1 < cur.p1-pl.cfg.Hysteresis*math.Abs(cur.p1))
}

func (pl *planner) bounded() bool {
	for i := range pl.g.rs {
		if pl.g.rs[i].bounded {
			return true
		}
	}
	return false
}

// planFree plans every job independently, spread over the CPUs.
func (pl *planner) planFree() {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(pl.jobs)/512))
	var wg sync.WaitGroup
	chunk := (len(pl.jobs) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(pl.jobs))
		wg.Go(func() {
			sc := &scratch{}
			for i := lo; i < hi; i++ {
				pl.decideFree(&pl.jobs[i], sc)
			}
		})
	}
	wg.Wait()
}

func (pl *planner) decideFree(j *jobInfo, sc *scratch) {
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.writeUrgent(j, "", false)
		return
	}
	c := pl.best(j, 0, sc, true)
	if !c.ok {
		c = pl.best(j, 1, sc, true)
	}
	if !c.ok {
		pl.writeUrgent(j, pl.whyNone(sc), false)
		return
	}
	spans := pl.spansOf(j, c, sc)
	kept := false
	if j.curR >= 0 {
		cur := pl.evalSpans(j, j.curR, j.curSpans)
		if pl.keepCurrent(cur, c) {
			c, spans, kept = cur, j.curSpans, true
		}
	}
	pl.write(j, c, spans, kept, sc, true)
}

// whyNone summarises why no allowed region had an option.
func (pl *planner) whyNone(sc *scratch) string {
	why := ""
	for _, c := range sc.perReg {
		switch {
		case why == "":
			why = c.why
		case why != c.why:
			return "no window before the deadline is free and under the price cap"
		}
	}
	switch why {
	case "over capacity":
		return "no window before the deadline has free capacity"
	case "over max price":
		return "no window before the deadline is under the price cap"
	case "past deadline":
		return ""
	}
	return "no window before the deadline is free and under the price cap"
}

// resv is a job's reservation while capacity is being shared out.
type resv struct {
	r      int
	spans  []span
	c      cand
	cur    bool
	urgent bool
	none   bool // urgent without a region: nothing reserved
}

// planBounded shares capacity out: greedy in slack order; if that strands
// a job, reserve as soon as possible then improve, and keep whichever
// strands fewer.
func (pl *planner) planBounded() {
	order := pl.order()
	snap := pl.snapshotFree()
	sc := &scratch{}
	stranded := 0
	for _, i := range order {
		if pl.greedy(&pl.jobs[i], sc) {
			stranded++
		}
	}
	if stranded == 0 {
		return
	}
	greedyOut := slices.Clone(pl.out)
	pl.restoreFree(snap)
	if pl.reserveAndImprove(order, sc) >= stranded {
		pl.out = greedyOut
	}
}

// greedy plans job j at its turn: its best option around what the jobs
// before it took (or its current plan, by the hysteresis rule). It reports
// whether the job was stranded: urgent for want of capacity.
func (pl *planner) greedy(j *jobInfo, sc *scratch) bool {
	var rv resv
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.reserveUrgent(j, &rv, "")
		return false
	}
	c := pl.best(j, 0, sc, true)
	if !c.ok {
		c = pl.best(j, 1, sc, true)
	}
	if !c.ok {
		pl.reserveUrgent(j, &rv, pl.whyNone(sc))
		return true
	}
	spans := pl.spansOf(j, c, sc)
	kept := false
	if pl.currentFits(j) {
		if cur := pl.evalSpans(j, j.curR, j.curSpans); pl.keepCurrent(cur, c) {
			c, spans, kept = cur, j.curSpans, true
		}
	}
	pl.occupy(j, c.r, spans, j.gpus, false)
	pl.write(j, c, spans, kept, sc, true)
	return false
}

func (pl *planner) snapshotFree() [][]int32 {
	snap := make([][]int32, len(pl.g.rs))
	for i := range pl.g.rs {
		snap[i] = slices.Clone(pl.g.rs[i].free)
	}
	return snap
}

func (pl *planner) restoreFree(snap [][]int32) {
	for i := range pl.g.rs {
		copy(pl.g.rs[i].free, snap[i])
	}
}

// reserveAndImprove is the fallback: reserve in slack order, as soon as
// possible, then improve in passes. It returns how many jobs it stranded.
func (pl *planner) reserveAndImprove(order []int, sc *scratch) int {
	res := make([]resv, len(pl.jobs))
	stranded := 0
	for _, i := range order {
		if pl.reserve(&pl.jobs[i], &res[i], sc) {
			stranded++
		}
	}
	explain := pl.cfg.Passes == 1
	for pass := 0; pass < pl.cfg.Passes; pass++ {
		moved := 0
		for _, i := range order {
			if res[i].urgent {
				continue
			}
			if pl.improve(&pl.jobs[i], &res[i], sc, explain) {
				moved++
			}
		}
		if explain {
			break
		}
		explain = moved == 0 || pass+2 >= pl.cfg.Passes
	}
	return stranded
}

// order returns job indices least slack first, the trials of a sweep
// together at the slack of their tightest trial.
func (pl *planner) order() []int {
	type key struct {
		gslack float64
		group  string
		gfirst int
	}
	groups := map[string]key{}
	for i := range pl.jobs {
		j := &pl.jobs[i]
		g := j.job.Group
		if g == "" {
			continue
		}
		k, ok := groups[g]
		if !ok {
			k = key{j.slack, g, i}
		}
		k.gslack = min(k.gslack, j.slack)
		groups[g] = k
	}
	keys := make([]key, len(pl.jobs))
	for i := range pl.jobs {
		j := &pl.jobs[i]
		if k, ok := groups[j.job.Group]; ok {
			keys[i] = k
		} else {
			keys[i] = key{j.slack, "", i}
		}
	}
	order := make([]int, len(pl.jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ka, kb := keys[a], keys[b]
		switch {
		case ka.gslack != kb.gslack:
			return cmpF(ka.gslack, kb.gslack)
		case ka.group != kb.group:
			return strings.Compare(ka.group, kb.group)
		case ka.gfirst != kb.gfirst:
			return ka.gfirst - kb.gfirst
		}
		return cmpF(pl.jobs[a].slack, pl.jobs[b].slack)
	})
	return order
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// occupy adds delta GPUs of job j over spans in region ri; urgent runs
// only take what is free.
func (pl *planner) occupy(j *jobInfo, ri int, spans []span, delta int32, clamp bool) {
	r := &pl.g.rs[ri]
	if !r.bounded {
		return
	}
	for _, sp := range spans {
		lo, hi := int(math.Floor(sp.a)), min(int(math.Ceil(sp.b-1e-9)), len(r.free))
		for k := max(lo, 0); k < hi; k++ {
			f := r.free[k] - delta
			if clamp {
				f = max(f, 0)
			}
			r.free[k] = f
		}
	}
}

// reserve reserves job j its current plan, else its earliest window, else
// makes it urgent; it reports whether the job was stranded for capacity.
func (pl *planner) reserve(j *jobInfo, rv *resv, sc *scratch) bool {
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.reserveUrgent(j, rv, "")
		return false
	}
	if pl.currentFits(j) {
		rv.r, rv.spans, rv.cur = j.curR, append(rv.spans[:0], j.curSpans...), true
		rv.c = pl.evalSpans(j, j.curR, j.curSpans)
		pl.occupy(j, rv.r, rv.spans, j.gpus, false)
		return false
	}
	for level := 0; level < 2; level++ {
		if c, ok := pl.asap(j, level); ok {
			rv.r, rv.c = c.r, c
			rv.spans = append(rv.spans[:0], span{c.x, c.x + j.ds})
			pl.occupy(j, rv.r, rv.spans, j.gpus, false)
			return false
		}
	}
	if j.interruptible {
		if c := pl.best(j, 1, sc, false); c.ok {
			rv.r, rv.c = c.r, c
			rv.spans = append(rv.spans[:0], pl.spansOf(j, c, sc)...)
			pl.occupy(j, rv.r, rv.spans, j.gpus, false)
			return false
		}
	}
	pl.best(j, 1, sc, true)
	pl.reserveUrgent(j, rv, pl.whyNone(sc))
	return true
}

func (pl *planner) reserveUrgent(j *jobInfo, rv *resv, why string) {
	rv.urgent = true
	ri := pl.writeUrgent(j, why, true)
	if ri < 0 {
		rv.none = true
		return
	}
	rv.r = ri
	rv.spans = append(rv.spans[:0], span{j.x0, j.x0 + j.ds})
	pl.occupy(j, ri, rv.spans, j.gpus, true)
}

// asap returns job j's earliest contiguous start that fits at the given
// level in any allowed region; the better score wins a tie.
func (pl *planner) asap(j *jobInfo, level int) (cand, bool) {
	var bc cand
	for _, ri16 := range j.regions {
		ri := int(ri16)
		r := &pl.g.rs[ri]
		capChk, priceChk := pl.checks(j, r)
		ls := j.ls[level]
		x, found := -1.0, false
		if j.x0 <= ls+1e-9 && fits(j, r, j.x0, j.x0+j.ds, capChk, priceChk) {
			x, found = j.x0, true
		}
		if !found {
			hi := min(int(math.Floor(ls+1e-9)), pl.g.n-1)
			for k := j.k0; k <= hi; {
				b := -1
				for s := k + j.occ - 1; s >= k; s-- {
					if blocked(j, r, s, capChk, priceChk) {
						b = s
						break
					}
				}
				if b < 0 {
					x, found = float64(k), true
					break
				}
				k = b + 1
			}
		}
		if !found || (bc.ok && x > bc.x) {
			continue
		}
		c := pl.evalSpans(j, ri, []span{{x, x + j.ds}})
		if !bc.ok || x < bc.x || better(c.p1, c.p2, bc.p1, bc.p2) {
			bc = c
		}
	}
	return bc, bc.ok
}

// improve is step 2 for one job: hand back the reservation and take the
// best option that fits. It reports whether the job moved.
func (pl *planner) improve(j *jobInfo, rv *resv, sc *scratch, explain bool) bool {
	pl.occupy(j, rv.r, rv.spans, -j.gpus, false)
	c := pl.best(j, 0, sc, explain)
	if !c.ok {
		c = pl.best(j, 1, sc, explain)
	}
	moved, kept := false, false
	back := false
	if j.curR >= 0 && pl.currentFits(j) {
		cur := pl.evalSpans(j, j.curR, j.curSpans)
		// Stay on the current plan while a move gains too little; return to
		// it only when that does not make this job's score worse.
		back = pl.keepCurrent(cur, c) && (rv.cur || !better(rv.c.p1, rv.c.p2, cur.p1, cur.p2))
		if back {
			moved = !rv.cur
			rv.r, rv.c, rv.cur, kept = j.curR, cur, true, true
			rv.spans = append(rv.spans[:0], j.curSpans...)
		}
	}
	if !back && c.ok && better(c.p1, c.p2, rv.c.p1, rv.c.p2) {
		moved = true
		rv.r, rv.c, rv.cur = c.r, c, false
		rv.spans = append(rv.spans[:0], pl.spansOf(j, c, sc)...)
	}
	pl.occupy(j, rv.r, rv.spans, j.gpus, false)
	if explain {
		pl.write(j, rv.c, rv.spans, kept, sc, true)
	}
	return moved
}
