package policy

import (
	"math"
	"slices"
)

// span is a run window in grid positions [a, b).
type span struct{ a, b float64 }

// cand is one option for one job: a region and a contiguous start x, or the
// spans held in the scratch's best buffer when segmented.
type cand struct {
	ok     bool
	r      int
	x      float64
	nspans int // 0 for a contiguous run at x
	p1, p2 float64
	g      float64
	cost   float64
	why    string // for a region with no option: why not
}

// scratch is one goroutine's reusable buffers, so the search allocates
// nothing per job, and its view of the free GPUs.
type scratch struct {
	// free is the free-GPU array of each lane (see grid.free) this
	// goroutine reads and updates (nil for an unbounded region): the
	// round's own while capacity is shared out, a private copy while
	// assignments are explained. raw is the matching grid.raw.
	free, raw [][]int32
	slab      slab
	text      []byte
	// ignoreCap makes the search ignore capacity: would the job fit at
	// all?
	ignoreCap bool
	// skipRegion is a region explain need not search (-1: none).
	skipRegion int
	wins       []repairWin
	moves      []move
	okRun      []int32
	blocks     []block
	top        []block
	segs       []seg
	tmpSpans   []span
	regSpans   []span // the best segmented option of the region in hand
	bestSpan   []span // the best segmented option over all regions
	perReg     []cand // each allowed region's best, for explain
}

// blockLess orders blocks by score, then tie-break, then start.
func blockLess(x, y block) bool { return blockCmp(x, y) < 0 }

func blockCmp(x, y block) int {
	switch {
	case x.c1 < y.c1:
		return -1
	case x.c1 > y.c1:
		return 1
	case x.c2 < y.c2:
		return -1
	case x.c2 > y.c2:
		return 1
	}
	return x.s - y.s
}

type block struct {
	s      int
	c1, c2 float64
}

type seg struct{ a, b int }

// coef returns the linear weights that turn a run's intensity integral dP
// and price integral dQ into the objective p1 (and tie-break p2), and the
// factors for gCO2e and USD.
func (pl *planner) coef(j *jobInfo, r *regionGrid) (a1, b1, a2, b2, kg, kc float64) {
	kWh := float64(j.gpus) * j.power / 1000 * j.d.Hours() * r.pue
	kg = kWh / j.ds // gCO2e per unit of dP
	kc = float64(j.gpus)
	if pl.cfg.CarbonPriceUSDPerTonne > 0 {
		return pl.cfg.CarbonPriceUSDPerTonne * kg / 1e6, kc, kg, 0, kg, kc
	}
	return kg, 0, kc, 0, kg, kc
}

// objective returns p1 and p2 of a run with integrals dP and dQ, and its
// gCO2e and USD.
func (pl *planner) objective(j *jobInfo, r *regionGrid, dP, dQ float64) (p1, p2, g, cost float64) {
	_, _, _, _, kg, kc := pl.coef(j, r)
	g, cost = kg*dP, kc*dQ
	if cp := pl.cfg.CarbonPriceUSDPerTonne; cp > 0 {
		return cost + cp*g/1e6, g, g, cost
	}
	return g, cost, g, cost
}

// better reports whether (p1, p2) beats (b1, b2): p1 lower beyond a relative
// tolerance, or equal within it and p2 lower.
func better(p1, p2, b1, b2 float64) bool {
	t := 1e-9 * (math.Abs(b1) + math.Abs(p1))
	if p1 < b1-t {
		return true
	}
	if p1 > b1+t {
		return false
	}
	return p2 < b2-1e-9*(math.Abs(b2)+math.Abs(p2))
}

// checks says which per-slot checks can bind for job j in region r.
func (pl *planner) checks(j *jobInfo, r *regionGrid) (capChk, priceChk bool) {
	return r.bounded, j.maxPrice > 0 && r.maxPrice > j.maxPrice
}

// blocked reports whether slot k cannot take job j in region r, whose free
// GPUs are f. A slot past f counts as full (see maxCapSlots); a slot past
// the price array is at the base price.
func blocked(j *jobInfo, r *regionGrid, f []int32, k int, capChk, priceChk bool) bool {
	if capChk && (k >= len(f) || f[k] < j.gpus) {
		return true
	}
	if priceChk {
		if k >= len(r.price)-1 {
			return r.basePr > j.maxPrice
		}
		return r.price[k] > j.maxPrice
	}
	return false
}

// fits reports whether every slot touched by [a, b) can take job j.
func fits(j *jobInfo, r *regionGrid, f []int32, a, b float64, capChk, priceChk bool) bool {
	if !capChk && !priceChk {
		return true
	}
	lo, hi := int(math.Floor(a)), int(math.Ceil(b-1e-9))
	for k := max(lo, 0); k < hi; k++ {
		if blocked(j, r, f, k, capChk, priceChk) {
			return false
		}
	}
	return true
}

// bestIn returns job j's best contiguous (and, for an interruptible job,
// segmented) option in region ri, starting no later than the latest start
// of the given level (0 with the safety margin, 1 without).
func (pl *planner) bestIn(j *jobInfo, ri int, level int, sc *scratch) cand {
	r := &pl.g.rs[ri]
	c := cand{r: ri}
	ls := j.ls[level]
	if ls < j.x0-1e-9 {
		c.why = "past deadline"
		return c
	}
	capChk, priceChk := pl.checks(j, r)
	capChk = capChk && !sc.ignoreCap
	a1, b1, a2, b2, _, _ := pl.coef(j, r)
	hi := min(int(math.Floor(ls+1e-9)), pl.g.n-1)
	lo := j.k0
	b1v, b2v := math.Inf(1), math.Inf(1)
	bx := -1.0
	if hi >= lo {
		dq, fr, occ := j.dq, j.fr, j.occ
		P, V, Q, PR := r.p, r.v, r.q, r.price
		sh := pl.g.slotH
		// A candidate can only win when its p1 is below cut: a bound a
		// little above the best p1 so far, so better (exact) runs rarely.
		cut := math.Inf(1)
		if hi+dq+1 < len(V) && !capChk && !priceChk {
			// Fast path: nothing can block, all reads inside the arrays.
			for k := lo; k <= hi; k++ {
				e := k + dq
				dP := P[e] + fr*V[e] - P[k]
				dQ := Q[e] + fr*PR[e]*sh - Q[k]
				p1 := a1*dP + b1*dQ
				if p1 > cut {
					continue
				}
				p2 := a2*dP + b2*dQ
				if bx < 0 || better(p1, p2, b1v, b2v) {
					b1v, b2v, bx = p1, p2, float64(k)
					cut = b1v + 3e-9*math.Abs(b1v)
				}
			}
		} else {
			// Walk down so the run of free slots ahead is known; on a tie the
			// earlier start wins.
			f := pl.freeOf(sc, j, ri)
			g := j.gpus
			maxP := j.maxPrice
			top := hi + occ - 1
			run := 0
			lim := len(PR) - 1
			baseBlocked := priceChk && r.basePr > maxP
			if !capChk && top >= lim && !baseBlocked {
				// Past the price array only the base price could block.
				run = top - lim + 1
				top = lim - 1
			}
			inside := hi+dq+1 < len(V)
			for k := top; k >= lo; k-- {
				if capChk && (k >= len(f) || f[k] < g) || priceChk && (k >= lim && baseBlocked || k < lim && PR[k] > maxP) {
					run = 0
					continue
				}
				run++
				if k > hi || run < occ {
					continue
				}
				var dP, dQ float64
				if inside {
					e := k + dq
					dP = P[e] + fr*V[e] - P[k]
					dQ = Q[e] + fr*PR[e]*sh - Q[k]
				} else {
					x := float64(k)
					dP = r.cum(x+j.ds) - P[k]
					dQ = r.cumPrice(x+j.ds, sh) - Q[k]
				}
				p1 := a1*dP + b1*dQ
				if p1 > cut {
					continue
				}
				p2 := a2*dP + b2*dQ
				if bx < 0 || !better(b1v, b2v, p1, p2) {
					b1v, b2v, bx = p1, p2, float64(k)
					cut = b1v + 3e-9*math.Abs(b1v)
				}
			}
		}
	}
	// An unaligned earliest start (now, mid-slot) is the first candidate.
	if j.x0 < float64(j.k0) && j.x0 <= ls+1e-9 && fits(j, r, pl.freeOf(sc, j, ri), j.x0, j.x0+j.ds, capChk, priceChk) {
		dP := r.cum(j.x0+j.ds) - r.cum(j.x0)
		dQ := r.cumPrice(j.x0+j.ds, pl.g.slotH) - r.cumPrice(j.x0, pl.g.slotH)
		p1, p2 := a1*dP+b1*dQ, a2*dP+b2*dQ
		if bx < 0 || !better(b1v, b2v, p1, p2) {
			b1v, b2v, bx = p1, p2, j.x0
		}
	}
	// An unaligned latest start (mid-slot) is the last candidate: a run
	// that is best ending as late as allowed need not end a slot early.
	if x := ls; x > float64(hi)+1e-9 && x > j.x0 && hi == int(math.Floor(ls+1e-9)) && fits(j, r, pl.freeOf(sc, j, ri), x, x+j.ds, capChk, priceChk) {
		dP := r.cum(x+j.ds) - r.cum(x)
		dQ := r.cumPrice(x+j.ds, pl.g.slotH) - r.cumPrice(x, pl.g.slotH)
		p1, p2 := a1*dP+b1*dQ, a2*dP+b2*dQ
		if bx < 0 || better(p1, p2, b1v, b2v) {
			b1v, b2v, bx = p1, p2, x
		}
	}
	if bx >= 0 {
		c.ok, c.x = true, bx
		c.p1, c.p2 = b1v, b2v
	}
	if j.interruptible {
		pl.segmentedIn(j, ri, level, sc, &c)
	}
	if !c.ok {
		switch {
		case hi < lo && j.x0 >= float64(j.k0):
			c.why = "past deadline"
		case capChk && priceChk:
			c.why = "over capacity or max price"
		case priceChk:
			c.why = "over max price"
		default:
			c.why = "over capacity"
		}
		return c
	}
	if c.nspans == 0 {
		dP := r.cum(c.x+j.ds) - r.cum(c.x)
		dQ := r.cumPrice(c.x+j.ds, pl.g.slotH) - r.cumPrice(c.x, pl.g.slotH)
		_, _, c.g, c.cost = pl.objective(j, r, dP, dQ)
	}
	return c
}

// segmentedIn looks for a cheaper split of interruptible job j in region ri
// and, when it finds one better than c, puts it in c and sc.regSpans.
//
// It tiles the usable slots with blocks of MinSegment (every phase of the
// tiling is tried), takes the cheapest free blocks that hold the job's whole
// slots, and adds any remainder to one segment at whichever end is cheapest.
// Adjacent blocks merge, so every segment is at least MinSegment long.
func (pl *planner) segmentedIn(j *jobInfo, ri int, level int, sc *scratch, c *cand) {
	r := &pl.g.rs[ri]
	m := pl.minSeg
	ks := j.kslots
	if ks < 2*m {
		return
	}
	a := j.k0
	b := min(int(math.Floor(j.ls[level]+j.ds+1e-9)), len(r.price)-1)
	if b-a < ks {
		return
	}
	capChk, priceChk := pl.checks(j, r)
	capChk = capChk && !sc.ignoreCap
	a1, b1, a2, b2, _, _ := pl.coef(j, r)
	sh := pl.g.slotH
	sc.okRun = slices.Grow(sc.okRun[:0], b-a)[:b-a]
	run := int32(0)
	f := pl.freeOf(sc, j, ri)
	for k := b - 1; k >= a; k-- {
		if blocked(j, r, f, k, capChk, priceChk) {
			run = 0
		} else {
			run++
		}
		sc.okRun[k-a] = run
	}
	cost := func(s, e int) (float64, float64) {
		dP := r.p[e] - r.p[s]
		dQ := r.q[e] - r.q[s]
		return a1*dP + b1*dQ, a2*dP + b2*dQ
	}
	q, rem := ks/m, ks%m
	trim := float64(ks) - j.ds
	minSegF := float64(pl.cfg.MinSegment)/float64(pl.g.slot) - 1e-9
	for ph := 0; ph < m; ph++ {
		sc.blocks = sc.blocks[:0]
		for s := a + ph; s+m <= b; s += m {
			if sc.okRun[s-a] < int32(m) {
				continue
			}
			c1, c2 := cost(s, s+m)
			sc.blocks = append(sc.blocks, block{s, c1, c2})
		}
		if len(sc.blocks) < q {
			continue
		}
		if q <= 8 {
			// Few blocks wanted: keep the q cheapest by insertion.
			top := sc.blocks[:0:0]
			if cap(sc.top) >= q {
				top = sc.top[:0]
			}
			for _, bl := range sc.blocks {
				if len(top) == q && !blockLess(bl, top[q-1]) {
					continue
				}
				if len(top) < q {
					top = append(top, bl)
				} else {
					top[q-1] = bl
				}
				for i := len(top) - 1; i > 0 && blockLess(top[i], top[i-1]); i-- {
					top[i], top[i-1] = top[i-1], top[i]
				}
			}
			sc.top = top
			copy(sc.blocks, top)
		} else {
			slices.SortFunc(sc.blocks, blockCmp)
		}
		chosen := sc.blocks[:q]
		slices.SortFunc(chosen, func(x, y block) int { return x.s - y.s })
		sc.segs = sc.segs[:0]
		for _, bl := range chosen {
			if n := len(sc.segs); n > 0 && sc.segs[n-1].b == bl.s {
				sc.segs[n-1].b += m
			} else {
				sc.segs = append(sc.segs, seg{bl.s, bl.s + m})
			}
		}
		if rem > 0 {
			bi, left := -1, false
			var bc1, bc2 float64
			for i, sg := range sc.segs {
				prevEnd, nextStart := a, b
				if i > 0 {
					prevEnd = sc.segs[i-1].b
				}
				if i+1 < len(sc.segs) {
					nextStart = sc.segs[i+1].a
				}
				if s := sg.a - rem; s >= prevEnd && sc.okRun[s-a] >= int32(rem) {
					c1, c2 := cost(s, sg.a)
					if bi < 0 || better(c1, c2, bc1, bc2) {
						bi, left, bc1, bc2 = i, true, c1, c2
					}
				}
				if e := sg.b + rem; e <= nextStart && sc.okRun[sg.b-a] >= int32(rem) {
					c1, c2 := cost(sg.b, e)
					if bi < 0 || better(c1, c2, bc1, bc2) {
						bi, left, bc1, bc2 = i, false, c1, c2
					}
				}
			}
			if bi < 0 {
				continue
			}
			if left {
				sc.segs[bi].a -= rem
			} else {
				sc.segs[bi].b += rem
			}
		}
		// Merge segments the remainder made touch, then turn them into
		// spans with the last one trimmed to the exact duration.
		sc.tmpSpans = sc.tmpSpans[:0]
		for _, sg := range sc.segs {
			if n := len(sc.tmpSpans); n > 0 && sc.tmpSpans[n-1].b == float64(sg.a) {
				sc.tmpSpans[n-1].b = float64(sg.b)
			} else {
				sc.tmpSpans = append(sc.tmpSpans, span{float64(sg.a), float64(sg.b)})
			}
		}
		sc.tmpSpans[len(sc.tmpSpans)-1].b -= trim
		if len(sc.tmpSpans) > 1 {
			short := false
			for _, sp := range sc.tmpSpans {
				if sp.b-sp.a < minSegF {
					short = true
				}
			}
			if short {
				continue
			}
		}
		var dP, dQ float64
		for _, sp := range sc.tmpSpans {
			dP += r.cum(sp.b) - r.cum(sp.a)
			dQ += r.cumPrice(sp.b, sh) - r.cumPrice(sp.a, sh)
		}
		p1, p2 := a1*dP+b1*dQ, a2*dP+b2*dQ
		if c.ok && !better(p1, p2, c.p1, c.p2) {
			continue
		}
		c.ok, c.p1, c.p2 = true, p1, p2
		c.x = sc.tmpSpans[0].a
		_, _, c.g, c.cost = pl.objective(j, r, dP, dQ)
		if len(sc.tmpSpans) == 1 {
			c.nspans = 0
			continue
		}
		c.nspans = len(sc.tmpSpans)
		sc.regSpans = append(sc.regSpans[:0], sc.tmpSpans...)
	}
}

// best returns job j's best option over its allowed regions at the given
// level, the earliest start on a tie (so a job that gains nothing by
// waiting starts now wherever there is room); with explain it also fills
// sc.perReg with each region's best.
func (pl *planner) best(j *jobInfo, level int, sc *scratch, explain bool) cand {
	var bc cand
	if explain {
		sc.perReg = sc.perReg[:0]
	}
	for _, ri := range j.regions {
		if !explain && !pl.opts.noPrune && bc.ok && pl.cannotBeat(j, int(ri), level, bc.p1) {
			continue
		}
		if explain && int(ri) == sc.skipRegion {
			continue
		}
		c := pl.bestIn(j, int(ri), level, sc)
		if explain {
			sc.perReg = append(sc.perReg, c)
		}
		if c.ok && (!bc.ok || better(c.p1, c.p2, bc.p1, bc.p2) || c.x < bc.x && !better(bc.p1, bc.p2, c.p1, c.p2)) {
			bc = c
			if c.nspans > 0 {
				sc.bestSpan = append(sc.bestSpan[:0], sc.regSpans...)
			}
		}
	}
	return bc
}

// spansOf returns the windows of option c, in grid positions.
func (pl *planner) spansOf(j *jobInfo, c cand, sc *scratch) []span {
	if c.nspans > 0 {
		return sc.bestSpan[:c.nspans]
	}
	sc.tmpSpans = append(sc.tmpSpans[:0], span{c.x, c.x + j.ds})
	return sc.tmpSpans
}

// evalSpans returns the objective of running job j over spans in region ri.
func (pl *planner) evalSpans(j *jobInfo, ri int, spans []span) cand {
	r := &pl.g.rs[ri]
	var dP, dQ float64
	for _, sp := range spans {
		dP += r.cum(sp.b) - r.cum(sp.a)
		dQ += r.cumPrice(sp.b, pl.g.slotH) - r.cumPrice(sp.a, pl.g.slotH)
	}
	c := cand{ok: true, r: ri, x: spans[0].a}
	c.p1, c.p2, c.g, c.cost = pl.objective(j, r, dP, dQ)
	if len(spans) > 1 {
		c.nspans = len(spans)
	}
	return c
}

// cannotBeat reports whether no option of job j in region ri at the given
// level can reach score p1 or tie it: its bound (every slot it could touch
// at the region's least intensity and price there) is already worse.
func (pl *planner) cannotBeat(j *jobInfo, ri int, level int, p1 float64) bool {
	r := &pl.g.rs[ri]
	if r.minV == nil {
		return false
	}
	a1, b1, _, _, _, _ := pl.coef(j, r)
	lo := int(math.Floor(j.x0))
	hi := min(int(math.Floor(j.ls[level]+1e-9)), pl.g.n-1) + j.occ
	if j.interruptible {
		// Segments may reach past the last start slot's run, up to the
		// deadline (see segmentedIn).
		hi = max(hi, min(int(math.Floor(j.ls[level]+j.ds+1e-9)), len(r.price)-1))
	}
	if hi <= lo {
		return false
	}
	minV, minPr := r.rangeMin(max(lo, 0), hi)
	lb := a1*j.ds*minV + b1*j.ds*pl.g.slotH*minPr
	return lb > p1+1e-9*(math.Abs(p1)+math.Abs(lb))
}
