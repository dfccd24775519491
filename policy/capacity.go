package policy

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"
)

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
			return cmp.Compare(ka.gslack, kb.gslack)
		case ka.group != kb.group:
			return strings.Compare(ka.group, kb.group)
		case ka.gfirst != kb.gfirst:
			return ka.gfirst - kb.gfirst
		case ka.slack != kb.slack:
			return cmp.Compare(ka.slack, kb.slack)
		}
		return ka.i - kb.i
	})
	order := make([]int, len(keys))
	for n, k := range keys {
		order[n] = k.i
	}
	return order
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
