package policy

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// resv is one job's decision while capacity is shared out.
type resv struct {
	c      cand    // the option taken; for an urgent job, its run from the earliest start
	one    [1]span // the run, when it is one piece
	more   []span  // the segments, when split
	level  int8    // 0: ends by the deadline less the margin; 1: by the deadline
	cur    bool    // on Job.Current
	urgent bool
	why    string // urgent: why, "" for a deadline that cannot be met
}

// spans returns the windows taken; call it on the resv in place.
func (rv *resv) spans() []span {
	if rv.more != nil {
		return rv.more
	}
	return rv.one[:]
}

// take records option c over spans in rv.
func (pl *planner) take(rv *resv, c cand, spans []span, level int, cur bool) {
	rv.c, rv.level, rv.cur, rv.urgent, rv.why = c, int8(level), cur, false, ""
	if len(spans) == 1 {
		rv.one[0], rv.more = spans[0], nil
		return
	}
	if len(pl.spans) < len(spans) {
		pl.spans = make([]span, max(len(spans), 4096))
	}
	rv.more = pl.spans[:len(spans):len(spans)]
	copy(rv.more, spans)
	pl.spans = pl.spans[len(spans):]
}

// reserveUrgent makes job j urgent (why as for writeUrgent) and counts its
// run from the earliest start in full against its region.
func (pl *planner) reserveUrgent(j *jobInfo, rv *resv, why string, sc *scratch) {
	*rv = resv{c: pl.urgentRun(j, sc), urgent: true, why: why}
	rv.one[0] = span{j.x0, j.x0 + j.ds}
	if rv.c.ok {
		pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
	}
}

// occupy takes delta GPUs over spans in region ri of the view sc. Free
// counts may go negative (an urgent run counts in full), so every change is
// undone exactly by its opposite. In a region split into size classes, a
// job of class c takes its GPUs from the capacity of every class up to c
// (the machines of those classes include the ones it can run on), and each
// lane's free count is the least over the classes it needs.
func (pl *planner) occupy(sc *scratch, ri int, spans []span, delta int32) {
	r := &pl.g.rs[ri]
	if r.sizes == nil {
		f := sc.free[r.lane]
		if f == nil {
			return
		}
		for _, sp := range spans {
			lo, hi := int(math.Floor(sp.a)), min(int(math.Ceil(sp.b-1e-9)), len(f))
			for k := max(lo, 0); k < hi; k++ {
				f[k] -= delta
			}
		}
		return
	}
	top := min(r.class(max(delta, -delta)), len(r.sizes)-1)
	free, raw := sc.free[r.lane:r.lane+len(r.sizes)], sc.raw[r.lane:r.lane+len(r.sizes)]
	for _, sp := range spans {
		lo, hi := int(math.Floor(sp.a)), min(int(math.Ceil(sp.b-1e-9)), len(raw[0]))
		for k := max(lo, 0); k < hi; k++ {
			m := int32(unbounded)
			for c := range raw {
				if c <= top {
					raw[c][k] -= delta
				}
				m = min(m, raw[c][k])
				free[c][k] = m
			}
		}
	}
}

// bestAny returns job j's best option with the safety margin, else without
// it, and the level it came from.
func (pl *planner) bestAny(j *jobInfo, sc *scratch, explain bool) (cand, int) {
	if c := pl.best(j, 0, sc, explain); c.ok {
		return c, 0
	}
	return pl.best(j, 1, sc, explain), 1
}

// capacityBound reports whether job j would have an option were it not for
// capacity: only then does its being urgent count as stranded.
func (pl *planner) capacityBound(j *jobInfo, sc *scratch) bool {
	sc.ignoreCap = true
	c, _ := pl.bestAny(j, sc, false)
	sc.ignoreCap = false
	return c.ok
}

// planBounded shares capacity out (see Plan): greedy in slack order, repair
// what it strands, and only if some job is still stranded, the
// earliest-deadline-first reservation with improvement passes; the plan that
// strands fewer wins. Decisions are made on one goroutine; the assignments
// are then written on all of them.
func (pl *planner) planBounded() {
	order := pl.order()
	sc := pl.newScratch(nil)
	start := pl.snapshotFree()
	if pl.opts.fallbackOnly {
		fb := make([]resv, len(pl.jobs))
		pl.reserveAll(fb, sc)
		pl.improveAll(fb, order, sc)
		pl.writeAll(fb)
		return
	}
	res := make([]resv, len(pl.jobs))
	var stranded []int
	for _, i := range order {
		if pl.greedy(&pl.jobs[i], &res[i], sc) {
			stranded = append(stranded, i)
		}
	}
	if len(stranded) > 0 && !pl.opts.noRepair {
		stranded = pl.repair(stranded, res, order, sc)
	}
	if len(stranded) == 0 {
		pl.writeAll(res)
		return
	}
	// The fallback's stranded jobs are known once it has reserved (its
	// passes never change them), so it improves only a plan that wins.
	mine := pl.snapshotFree()
	pl.restoreFree(start)
	fb := make([]resv, len(pl.jobs))
	nf := pl.reserveAll(fb, sc)
	if nf < len(stranded) {
		pl.improveAll(fb, order, sc)
		pl.writeAll(fb)
		return
	}
	pl.restoreFree(mine)
	pl.writeAll(res)
}

// greedy decides job j at its turn: its best option around what the jobs
// before it took (or its current plan, by the hysteresis rule). It reports
// whether the job was stranded: urgent for want of capacity.
func (pl *planner) greedy(j *jobInfo, rv *resv, sc *scratch) bool {
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.reserveUrgent(j, rv, "", sc)
		return false
	}
	c, level := pl.bestAny(j, sc, false)
	if !c.ok {
		pl.best(j, 1, sc, true)
		why := pl.whyNone(sc)
		stranded := pl.capacityBound(j, sc)
		pl.reserveUrgent(j, rv, why, sc)
		return stranded
	}
	spans := pl.spansOf(j, c, sc)
	cur := false
	if pl.currentFits(j, sc) {
		if cc := pl.evalSpans(j, j.curR, j.curSpans); pl.keepCurrent(cc, c) {
			c, spans, cur, level = cc, j.curSpans, true, 0
		}
	}
	pl.take(rv, c, spans, level, cur)
	pl.occupy(sc, c.r, rv.spans(), j.gpus)
	return false
}

// Repair limits: windows tried per stranded job, and work per round (one
// unit per job moved or 256 jobs looked at), so a round that strands many
// jobs falls back quickly instead of searching at length.
const (
	repairWindows   = 8
	repairScanBatch = 256
)

func repairBudget(jobs int) int { return 256 + jobs/16 }

// repair is step 2 of Plan's capacity algorithm for the stranded jobs, in
// slack order; it returns those still stranded.
func (pl *planner) repair(stranded []int, res []resv, order []int, sc *scratch) []int {
	budget := repairBudget(len(pl.jobs))
	var holders [][]int32
	var left []int
	for _, i := range stranded {
		if budget > 0 {
			if holders == nil {
				holders = pl.holders(res, order)
			}
			if pl.repairOne(i, res, holders, sc, &budget) {
				continue
			}
		}
		left = append(left, i)
	}
	return left
}

// holders lists, per bounded region, the jobs that hold a window there,
// the most slack first and jobs on their current plan last: the order in
// which repair asks them to move.
func (pl *planner) holders(res []resv, order []int) [][]int32 {
	out := make([][]int32, len(pl.g.rs))
	for _, cur := range []bool{false, true} {
		for k := len(order) - 1; k >= 0; k-- {
			i := order[k]
			rv := &res[i]
			if rv.urgent || !rv.c.ok || rv.cur != cur || !pl.g.rs[rv.c.r].bounded {
				continue
			}
			out[rv.c.r] = append(out[rv.c.r], int32(i))
		}
	}
	return out
}

// repairWin is a window a stranded job could take if deficit GPU-slots
// were freed.
type repairWin struct {
	deficit int64
	p1, p2  float64
	r       int
	x       float64
}

// repairOne tries to place stranded job i (see repair).
func (pl *planner) repairOne(i int, res []resv, holders [][]int32, sc *scratch, budget *int) bool {
	j := &pl.jobs[i]
	rv := &res[i]
	if rv.c.ok {
		pl.occupy(sc, rv.c.r, rv.spans(), -j.gpus)
	}
	// Moves since its turn, and its own urgent run handed back, may have
	// made room already.
	*budget--
	if c, level := pl.bestAny(j, sc, false); c.ok {
		pl.take(rv, c, pl.spansOf(j, c, sc), level, false)
		pl.occupy(sc, c.r, rv.spans(), j.gpus)
		return true
	}
	wins := sc.wins[:0]
	for _, ri16 := range j.regions {
		ri := int(ri16)
		r := &pl.g.rs[ri]
		f := pl.freeOf(sc, j, ri)
		if f == nil {
			continue
		}
		_, priceChk := pl.checks(j, r)
		try := func(x float64) {
			lo, hi := max(int(math.Floor(x)), 0), int(math.Ceil(x+j.ds-1e-9))
			if hi > len(f) {
				return
			}
			var deficit int64
			for k := lo; k < hi; k++ {
				if priceChk && blocked(j, r, nil, k, false, true) {
					return
				}
				if d := j.gpus - f[k]; d > 0 {
					deficit += int64(d)
				}
			}
			if deficit == 0 {
				return
			}
			c := pl.evalSpans(j, ri, []span{{x, x + j.ds}})
			wins = append(wins, repairWin{deficit, c.p1, c.p2, ri, x})
		}
		if j.x0 < float64(j.k0) && j.x0 <= j.ls[1]+1e-9 {
			try(j.x0)
		}
		for k := j.k0; k <= min(int(math.Floor(j.ls[1]+1e-9)), pl.g.n-1); k++ {
			try(float64(k))
		}
	}
	slices.SortFunc(wins, func(a, b repairWin) int {
		switch {
		case a.deficit != b.deficit:
			return int(a.deficit - b.deficit)
		case better(a.p1, a.p2, b.p1, b.p2):
			return -1
		case better(b.p1, b.p2, a.p1, a.p2):
			return 1
		case a.r != b.r:
			return a.r - b.r
		}
		return cmpF(a.x, b.x)
	})
	sc.wins = wins
	for t := 0; t < min(len(wins), repairWindows) && *budget > 0; t++ {
		if pl.tryWindow(i, wins[t], res, holders, sc, budget) {
			return true
		}
	}
	if rv.c.ok {
		pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
	}
	return false
}

// move is a job repair moved, with its decision before.
type move struct {
	v   int32
	old resv
}

// tryWindow puts stranded job i in window w and moves holders off the
// slots left over capacity; it undoes everything unless that succeeds.
func (pl *planner) tryWindow(i int, w repairWin, res []resv, holders [][]int32, sc *scratch, budget *int) bool {
	j := &pl.jobs[i]
	sp := [1]span{{w.x, w.x + j.ds}}
	f := pl.freeOf(sc, j, w.r)
	lo, hi := max(int(math.Floor(w.x)), 0), int(math.Ceil(w.x+j.ds-1e-9))
	pl.occupy(sc, w.r, sp[:], j.gpus)
	over := func(a, b int) bool {
		for k := max(a, lo); k < min(b, hi); k++ {
			if f[k] < 0 {
				return true
			}
		}
		return false
	}
	moves := sc.moves[:0]
	for n, v := range holders[w.r] {
		if !over(lo, hi) || *budget <= 0 {
			break
		}
		if n%repairScanBatch == repairScanBatch-1 {
			*budget--
		}
		vr := &res[v]
		if int(v) == i || vr.urgent || vr.c.r != w.r {
			continue
		}
		touches := false
		for _, s := range vr.spans() {
			if over(int(math.Floor(s.a)), int(math.Ceil(s.b-1e-9))) {
				touches = true
				break
			}
		}
		if !touches {
			continue
		}
		vj := &pl.jobs[v]
		old := *vr
		pl.occupy(sc, w.r, vr.spans(), -vj.gpus)
		*budget--
		c, level := pl.bestAny(vj, sc, false)
		if !c.ok {
			pl.occupy(sc, w.r, vr.spans(), vj.gpus)
			continue
		}
		pl.take(vr, c, pl.spansOf(vj, c, sc), level, false)
		pl.occupy(sc, c.r, vr.spans(), vj.gpus)
		moves = append(moves, move{v, old})
	}
	sc.moves = moves[:0]
	if !over(lo, hi) {
		level := 1
		if w.x <= j.ls[0]+1e-9 {
			level = 0
		}
		pl.take(&res[i], pl.evalSpans(j, w.r, sp[:]), sp[:], level, false)
		return true
	}
	for k := len(moves) - 1; k >= 0; k-- {
		m := &moves[k]
		vr, vj := &res[m.v], &pl.jobs[m.v]
		pl.occupy(sc, vr.c.r, vr.spans(), -vj.gpus)
		*vr = m.old
		pl.occupy(sc, vr.c.r, vr.spans(), vj.gpus)
	}
	pl.occupy(sc, w.r, sp[:], -j.gpus)
	return false
}

func (pl *planner) snapshotFree() *capView { return pl.cloneView() }

func (pl *planner) restoreFree(snap *capView) {
	for i := range pl.g.free {
		copy(pl.g.free[i], snap.free[i])
		copy(pl.g.raw[i], snap.raw[i])
	}
}

// reserveAll is step 3's reservation: earliest deadline first, as soon as
// possible. It returns how many jobs it stranded.
func (pl *planner) reserveAll(res []resv, sc *scratch) int {
	stranded := 0
	for _, i := range pl.edfOrder() {
		if pl.reserve(&pl.jobs[i], &res[i], sc) {
			stranded++
		}
	}
	return stranded
}

// improveAll is step 3's passes, in slack order, until none moves a job.
func (pl *planner) improveAll(res []resv, order []int, sc *scratch) {
	if pl.opts.noImprove {
		return
	}
	for pass := 0; pass < pl.cfg.Passes; pass++ {
		moved := 0
		for _, i := range order {
			if !res[i].urgent && pl.improve(&pl.jobs[i], &res[i], sc) {
				moved++
			}
		}
		if moved == 0 {
			break
		}
	}
}

// order returns job indices least slack first, the trials of a sweep
// together at the slack of their tightest trial. Every key ends in the
// index, so an unstable sort is deterministic.
func (pl *planner) order() []int {
	type key struct {
		gslack float64
		group  string
		gfirst int
		slack  float64
		i      int
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
			k = key{gslack: j.slack, group: g, gfirst: i}
		}
		k.gslack = min(k.gslack, j.slack)
		groups[g] = k
	}
	keys := make([]key, len(pl.jobs))
	for i := range pl.jobs {
		j := &pl.jobs[i]
		k := key{gslack: j.slack, gfirst: i}
		if j.job.Group != "" {
			k = groups[j.job.Group]
		}
		k.slack, k.i = j.slack, i
		keys[i] = k
	}
	slices.SortFunc(keys, func(ka, kb key) int {
		switch {
		case ka.gslack != kb.gslack:
			return cmpF(ka.gslack, kb.gslack)
		case ka.group != kb.group:
			return strings.Compare(ka.group, kb.group)
		case ka.gfirst != kb.gfirst:
			return ka.gfirst - kb.gfirst
		case ka.slack != kb.slack:
			return cmpF(ka.slack, kb.slack)
		}
		return ka.i - kb.i
	})
	order := make([]int, len(keys))
	for n, k := range keys {
		order[n] = k.i
	}
	return order
}

// edfOrder returns job indices earliest deadline first, then least slack.
func (pl *planner) edfOrder() []int {
	type key struct {
		deadline, slack float64
		i               int
	}
	keys := make([]key, len(pl.jobs))
	for i := range pl.jobs {
		j := &pl.jobs[i]
		keys[i] = key{j.ls[1] + j.ds, j.slack, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		switch {
		case a.deadline != b.deadline:
			return cmpF(a.deadline, b.deadline)
		case a.slack != b.slack:
			return cmpF(a.slack, b.slack)
		}
		return a.i - b.i
	})
	order := make([]int, len(keys))
	for n, k := range keys {
		order[n] = k.i
	}
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

// reserve reserves job j its current plan, else its earliest window, else
// makes it urgent; it reports whether the job was stranded for capacity.
func (pl *planner) reserve(j *jobInfo, rv *resv, sc *scratch) bool {
	if len(j.regions) == 0 || j.ls[1] < j.x0-1e-9 {
		pl.reserveUrgent(j, rv, "", sc)
		return false
	}
	if pl.currentFits(j, sc) {
		pl.take(rv, pl.evalSpans(j, j.curR, j.curSpans), j.curSpans, 0, true)
		pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
		return false
	}
	for level := 0; level < 2; level++ {
		if c, ok := pl.asap(j, level, sc); ok {
			pl.take(rv, c, []span{{c.x, c.x + j.ds}}, level, false)
			pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
			return false
		}
	}
	if j.interruptible {
		if c := pl.best(j, 1, sc, false); c.ok {
			pl.take(rv, c, pl.spansOf(j, c, sc), 1, false)
			pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
			return false
		}
	}
	pl.best(j, 1, sc, true)
	why := pl.whyNone(sc)
	stranded := pl.capacityBound(j, sc)
	pl.reserveUrgent(j, rv, why, sc)
	return stranded
}

// asap returns job j's earliest contiguous start that fits at the given
// level in any allowed region; the better score wins a tie.
func (pl *planner) asap(j *jobInfo, level int, sc *scratch) (cand, bool) {
	var bc cand
	ls := j.ls[level]
	if ls < j.x0-1e-9 {
		return bc, false
	}
	for _, ri16 := range j.regions {
		ri := int(ri16)
		r := &pl.g.rs[ri]
		f := pl.freeOf(sc, j, ri)
		capChk, priceChk := pl.checks(j, r)
		x, found := -1.0, false
		if fits(j, r, f, j.x0, j.x0+j.ds, capChk, priceChk) {
			x, found = j.x0, true
		}
		if !found {
			hi := min(int(math.Floor(ls+1e-9)), pl.g.n-1)
			for k := j.k0; k <= hi; {
				b := -1
				for s := k + j.occ - 1; s >= k; s-- {
					if blocked(j, r, f, s, capChk, priceChk) {
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

// improve is step 3's pass for one job: hand back the reservation and take
// the best option that fits. It reports whether the job moved.
func (pl *planner) improve(j *jobInfo, rv *resv, sc *scratch) bool {
	pl.occupy(sc, rv.c.r, rv.spans(), -j.gpus)
	c, level := pl.bestAny(j, sc, false)
	moved, back := false, false
	if j.curR >= 0 && pl.currentFits(j, sc) {
		cur := pl.evalSpans(j, j.curR, j.curSpans)
		// Stay on the current plan while a move gains too little; return to
		// it only when that does not make this job's score worse.
		back = pl.keepCurrent(cur, c) && (rv.cur || !better(rv.c.p1, rv.c.p2, cur.p1, cur.p2))
		if back {
			moved = !rv.cur
			pl.take(rv, cur, j.curSpans, 0, true)
		}
	}
	if !back && c.ok && better(c.p1, c.p2, rv.c.p1, rv.c.p2) {
		moved = true
		pl.take(rv, c, pl.spansOf(j, c, sc), level, false)
	}
	pl.occupy(sc, rv.c.r, rv.spans(), j.gpus)
	return moved
}

// writeAll writes every job's assignment from its decision, in parallel.
// Each goroutine explains against its own copy of the final free GPUs,
// handing the job's own reservation back while it looks, so the
// alternatives are what the job could have had around everyone else.
func (pl *planner) writeAll(res []resv) {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(pl.jobs)/512))
	var wg sync.WaitGroup
	chunk := (len(pl.jobs) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(pl.jobs))
		wg.Go(func() {
			sc := pl.newScratch(pl.cloneView())
			for i := lo; i < hi; i++ {
				pl.explain(&pl.jobs[i], &res[i], sc)
			}
		})
	}
	wg.Wait()
}

func (pl *planner) explain(j *jobInfo, rv *resv, sc *scratch) {
	if rv.urgent {
		pl.writeUrgent(j, rv.c, rv.why, sc)
		return
	}
	spans := rv.spans()
	pl.occupy(sc, rv.c.r, spans, -j.gpus)
	if !rv.cur {
		// Its own region's best is the winner, which alternatives skips.
		sc.skipRegion = rv.c.r
	}
	pl.best(j, int(rv.level), sc, true)
	sc.skipRegion = -1
	pl.write(j, rv.c, spans, rv.cur, sc, true)
	pl.occupy(sc, rv.c.r, spans, j.gpus)
}
