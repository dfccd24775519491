package policy

import (
	"cmp"
	"math"
	"slices"
)

// Step 3 of Plan's capacity algorithm: the earliest-deadline-first
// reservation and the improvement passes.

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
			return cmp.Compare(a.deadline, b.deadline)
		case a.slack != b.slack:
			return cmp.Compare(a.slack, b.slack)
		}
		return a.i - b.i
	})
	order := make([]int, len(keys))
	for n, k := range keys {
		order[n] = k.i
	}
	return order
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
