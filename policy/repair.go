package policy

import (
	"cmp"
	"math"
	"slices"
)

// Step 2 of Plan's capacity algorithm: repair what greedy stranded.

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
		return cmp.Compare(a.x, b.x)
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
