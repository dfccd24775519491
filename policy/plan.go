package policy

import (
	"math"
	"runtime"
	"slices"
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
// a job. A region-slot priced above the job's MaxPriceUSDPerGPUHour is
// never used, not even for an urgent run: a job with no window under its
// cap is Held (no region, no segments) and waits for a later round.
//
// # Windows and deadlines
//
// Runs start at max(now, Earliest) or at a slot boundary after it, and end
// by the deadline less the safety margin (Config.SafetyMargin). Of options
// that score the same, in one region or across regions, the earliest start
// wins: a job that gains nothing by waiting starts now wherever there is
// room, mid-slot, rather than at the next boundary. When nothing
// fits with the margin, the planner drops the margin but still ends by the
// deadline. When nothing ends by the deadline at all (too late, or every
// window is over capacity or the price cap) the job is Urgent: it starts at
// max(now, Earliest) in its best allowed region whose price there is under
// its cap (else it is Held) and its Reason says why.
//
// # Baseline
//
// Savings are counted against running at once in the job's home region
// (Job.Home, default its first allowed region), split into what waiting
// saves (the chosen region at once against the plan) and what moving saves
// (the home region at once against the chosen region at once). An
// interruptible job may instead run as several segments in one region, each
// at least Config.MinSegment long (a job shorter than two of them runs in
// one piece); it gets them only when they beat its best single run.
//
// # Capacity
//
// Without capacity limits every job gets its best option independently (in
// parallel). A region whose Capacity is 0 is unbounded: its Busy list is
// ignored. When some region has a Capacity, its free GPUs are tracked per
// slot over every slot a run of the round can touch (a run holds each slot
// it overlaps at all, from its first to its last, however long it is), and
// jobs are ordered by slack, least first (the trials of a sweep, jobs
// sharing Group, next to each other at the slack of their tightest trial):
//
//  1. Greedy: in that order each job takes its best option that fits around
//     what the jobs before it took. Trials of a sweep therefore spread over
//     the greenest free windows and regions instead of stacking into one
//     slot.
//  2. Repair, only for a job step 1 left with no window before its
//     deadline: for a few of its windows, those needing the fewest GPUs
//     freed first, it takes the window and moves jobs holding it, the most
//     flexible first, each to its best option that still fits and meets its
//     own deadline; if that does not make room, everything moved goes back.
//  3. Fallback, only when some job is still without a window: start again
//     and reserve, earliest deadline first, each job its current plan if it
//     fits, else its earliest window that fits (as soon as possible, which
//     leaves later windows to jobs with later deadlines); then, up to
//     Config.Passes times, in slack order, let each job hand back its
//     reservation and take the best option around everyone else's. A job
//     can always take back its own reservation, so these passes never make
//     a job late, and each move strictly lowers the mover's score. The plan
//     that strands fewer jobs (leaves them urgent though they would have a
//     window were capacity ignored) wins, steps 1–2's on a tie. The
//     reservation alone settles that count, so a fallback that loses is
//     never improved.
//
// This guarantees:
//   - no region-slot is ever planned past its free capacity (Capacity minus
//     the Busy usages overlapping the slot); only Urgent jobs, which start
//     at once, are not held to it, and they count against everyone else;
//   - no more jobs are left urgent for want of capacity than the
//     earliest-deadline-first, as-soon-as-possible reservation leaves; so
//     in a round where that rule is optimal, no job is urgent whenever
//     every deadline can be met: one region with a capacity and no Busy
//     usages, now on a slot boundary, every job allowed to start now, each
//     needing more than half the pool for a whole number of slots, none
//     interruptible or price-capped, no current plans.
//
// In a region whose machines are known (Region.Workers) the free GPUs are
// kept per size class (see the package doc): a job counts only room on
// machines at least its size, and a job larger than a region's largest
// machine (Region.MaxJobGPUs) is not planned there; with no allowed region
// left it is Urgent with no region and a Reason that says so.
//
// It does not guarantee the least total score: that is a hard packing
// problem. Explain lists, for each allowed region, the best option around
// the final plan of everyone else; one that beats the winner is marked
// "over capacity when planned" (another job held it at this job's turn and
// moved later).
//
// # Stability
//
// A job whose Current plan is still valid (allowed region, not started
// before now, same duration, ending by the deadline less the margin, within
// capacity and price cap) keeps it unless the best option beats its score
// by more than Config.Hysteresis; such assignments have Kept set.
func Plan(in Input) Result {
	return planWith(in, planOpts{})
}

// planOpts selects paths of the capacity algorithm, for tests.
type planOpts struct {
	fallbackOnly bool // skip greedy and repair: reserve, then improve
	noImprove    bool // in the fallback, stop after the reservation
	noRepair     bool // skip the repair step
	noPrune      bool // search every allowed region (see cannotBeat)
}

func planWith(in Input, o planOpts) Result {
	if len(in.Jobs) == 0 {
		return Result{Assignments: []Assignment{}}
	}
	pl := newPlanner(in)
	pl.opts = o
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
	x0            float64      // earliest start position
	k0            int          // first slot boundary at or after x0
	ls            [2]float64   // latest start: with margin, without
	latest        [2]time.Time // the same as times, exactly
	regions       []int32
	home          int32 // the baseline's region: Job.Home, else regions[0]; -1 with no region
	maxPrice      float64
	interruptible bool
	slack         float64
	curR          int // region of a valid Current, else -1
	curSpans      []span
	// tooBig is set when the job needs more GPUs than any allowed region's
	// largest machine (Region.MaxJobGPUs): it has no region left.
	tooBig bool
}

type planner struct {
	in     Input
	cfg    Config
	opts   planOpts
	g      *grid
	jobs   []jobInfo
	out    []Assignment
	minSeg int
	spans  []span // backing for reservations' segments (see resv)
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
	// Jobs that name no region share one list of every region.
	var all []int32
	for k, r := range in.Regions {
		if names[r.Name] == int32(k) {
			all = append(all, int32(k))
		}
	}
	all = all[:len(all):len(all)]
	// limit[k]: the largest job region k runs; 0 = no limit.
	limit := make([]int, len(in.Regions))
	limited := false
	for k, r := range in.Regions {
		limit[k] = r.maxJob()
		limited = limited || limit[k] > 0
	}
	npool := 0
	for i := range in.Jobs {
		npool += len(in.Jobs[i].Regions)
	}
	pool := make([]int32, 0, npool)
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
		j.latest = [2]time.Time{jb.Deadline.Add(-m - j.d), jb.Deadline.Add(-j.d)}
		j.ls[0] = pos(j.latest[0])
		j.ls[1] = pos(j.latest[1])
		j.slack = j.ls[1] - j.x0
		j.maxPrice = jb.MaxPriceUSDPerGPUHour
		j.interruptible = jb.Interruptible
		if len(jb.Regions) == 0 {
			j.regions = all
		} else {
			start := len(pool)
			for _, name := range jb.Regions {
				if k, ok := names[name]; ok && !slices.Contains(pool[start:], k) {
					pool = append(pool, k)
				}
			}
			j.regions = pool[start:len(pool):len(pool)]
		}
		if limited {
			j.regions, j.tooBig = fitting(j.regions, limit, int(j.gpus))
		}
		j.home = -1
		if k, ok := names[jb.Home]; ok && jb.Home != "" {
			j.home = k
		} else if len(j.regions) > 0 {
			j.home = j.regions[0]
		}
		if s := jb.Deadline.Add(-j.d); s.After(last) {
			last = s
		}
		maxRun = max(maxRun, j.occ)
		j.curR = -1
	}
	// Capacity is tracked as far as any run that starts by the last start
	// slot n reaches: an urgent run from a job's earliest start, or a
	// current plan.
	runEnd := func(n int) float64 {
		e := 0.0
		for i := range pl.jobs {
			j := &pl.jobs[i]
			if j.x0 <= float64(n) {
				e = max(e, j.x0+j.ds)
			}
			if cur := j.job.Current; cur != nil && len(cur.Segments) > 0 && pos(cur.Segments[0].Start) <= float64(n) {
				e = max(e, pos(cur.Segments[len(cur.Segments)-1].End))
			}
		}
		return e
	}
	pl.g = buildGrid(in, cfg, last, maxRun, runEnd)
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
			if !fits(j, r, nil, sp.a, sp.b, false, true) {
				return
			}
		}
	}
	j.curR, j.curSpans = ri, spans
}

// fitting returns the regions of list whose limit (0: none) admits a job of
// gpus GPUs, list itself when all do, and whether none does.
func fitting(list []int32, limit []int, gpus int) ([]int32, bool) {
	n := 0
	for _, k := range list {
		if limit[k] <= 0 || gpus <= limit[k] {
			n++
		}
	}
	if n == len(list) {
		return list, false
	}
	out := make([]int32, 0, n)
	for _, k := range list {
		if limit[k] <= 0 || gpus <= limit[k] {
			out = append(out, k)
		}
	}
	return out, n == 0
}

// freeOf returns the free GPUs job j may take in region ri in the view sc,
// per slot: those of its size class there (see regionGrid.sizes); nil for
// an unbounded region.
func (pl *planner) freeOf(sc *scratch, j *jobInfo, ri int) []int32 {
	r := &pl.g.rs[ri]
	return sc.free[r.lane+r.class(j.gpus)]
}

// currentFits reports whether job j's valid Current plan fits the capacity
// left in the view sc.
func (pl *planner) currentFits(j *jobInfo, sc *scratch) bool {
	if j.curR < 0 {
		return false
	}
	r := &pl.g.rs[j.curR]
	if !r.bounded {
		return true
	}
	for _, sp := range j.curSpans {
		if !fits(j, r, pl.freeOf(sc, j, j.curR), sp.a, sp.b, true, false) {
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
			sc := pl.newScratch(nil)
			for i := lo; i < hi; i++ {
				pl.decideFree(&pl.jobs[i], sc)
			}
		})
	}
	wg.Wait()
}

func (pl *planner) decideFree(j *jobInfo, sc *scratch) {
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.writeUrgent(j, pl.urgentRun(j, sc), "", sc)
		return
	}
	c := pl.best(j, 0, sc, true)
	if !c.ok {
		c = pl.best(j, 1, sc, true)
	}
	if !c.ok {
		pl.writeUrgent(j, pl.urgentRun(j, sc), pl.whyNone(sc), sc)
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

// newScratch returns buffers for one goroutine viewing the free GPUs in
// v (nil: the round's own arrays).
func (pl *planner) newScratch(v *capView) *scratch {
	if v == nil {
		v = &capView{free: pl.g.free, raw: pl.g.raw}
	}
	// Room for a few pieces per job, up to slabChunk per allocation.
	return &scratch{free: v.free, raw: v.raw, skipRegion: -1, slab: slab{chunk: min(slabChunk, 16+8*len(pl.jobs))}}
}

// capView is a set of free-GPU lanes (see grid.free and grid.raw).
type capView struct{ free, raw [][]int32 }

// cloneView returns a private copy of the round's free-GPU lanes.
func (pl *planner) cloneView() *capView {
	v := &capView{free: make([][]int32, len(pl.g.free)), raw: make([][]int32, len(pl.g.raw))}
	for i := range pl.g.free {
		v.free[i], v.raw[i] = slices.Clone(pl.g.free[i]), slices.Clone(pl.g.raw[i])
	}
	return v
}
