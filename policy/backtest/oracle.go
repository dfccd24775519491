package backtest

import (
	"math"
	"slices"
	"sort"
)

// oracleJob is a job as the oracle sees it: times in Unix nanoseconds and
// the allowed regions as indexes.
type oracleJob struct {
	submit, deadline, dur int64
	gpus                  float64
	kwhPerSecPerPUE       float64 // gpus × power_w / 1000 / 3600
	regions               []int
	interruptible         bool
}

// seg is one run interval in one region.
type seg struct {
	region     int
	start, end int64
}

// penalty is a Lagrange multiplier per GPU-second on each piece of a
// region's step function (nil: no capacity constraint there).
type penalty []float64

// oracleCost returns the cost of a job running over [a, b) in region r:
// gCO2e of the actual series plus the capacity penalty, if any.
func oracleCost(j *oracleJob, rg *simRegion, lam penalty, a, b int64) float64 {
	c := j.kwhPerSecPerPUE * rg.pue * rg.step.integral(a, b)
	if lam != nil && fits(j, rg) {
		c += j.gpus * penIntegral(rg.step, lam, a, b)
	}
	return c
}

// penIntegral integrates a per-piece penalty over [a, b); outside the data
// the penalty is zero.
func penIntegral(f *stepFn, lam penalty, a, b int64) float64 {
	var s float64
	n := len(f.v)
	for i := f.piece(a); i < n && f.t[i] < b; i++ {
		lo, hi := max(a, f.t[i]), min(b, f.t[i+1])
		if hi > lo {
			s += lam[i] * float64(hi-lo) / 1e9
		}
	}
	return s
}

// bestContiguous returns the cheapest start for a contiguous run of j in
// region r within [lo, hi] (latest start). The cost is piecewise linear in
// the start between the instants where the start or the end meets a step
// boundary, so the minimum is at one of those or at lo or hi.
func bestContiguous(j *oracleJob, rg *simRegion, lam penalty, lo, hi int64) (int64, float64) {
	f := rg.step
	bestS, bestC := lo, oracleCost(j, rg, lam, lo, lo+j.dur)
	try := func(s int64) {
		if s < lo || s > hi {
			return
		}
		if c := oracleCost(j, rg, lam, s, s+j.dur); c < bestC || (c == bestC && s < bestS) {
			bestS, bestC = s, c
		}
	}
	try(hi)
	for i := sort.Search(len(f.t), func(k int) bool { return f.t[k] > lo }); i < len(f.t) && f.t[i] <= hi; i++ {
		try(f.t[i])
	}
	for i := sort.Search(len(f.t), func(k int) bool { return f.t[k] > lo+j.dur }); i < len(f.t) && f.t[i]-j.dur <= hi; i++ {
		try(f.t[i] - j.dur)
	}
	return bestS, bestC
}

// bestIntervals picks the cheapest pieces of region r inside [lo, hi) that
// add up to j.dur: exact for a step function (any part of a piece costs
// the same per second). Equal costs go to the earlier piece.
func bestIntervals(j *oracleJob, rg *simRegion, lam penalty, lo, hi int64) ([]seg, float64) {
	f := rg.step
	type piece struct {
		a, b int64
		rate float64 // cost per second
	}
	var ps []piece
	add := func(a, b int64, i int) {
		a, b = max(a, lo), min(b, hi)
		if b <= a {
			return
		}
		r := j.kwhPerSecPerPUE * rg.pue * f.v[i]
		if lam != nil && fits(j, rg) && a >= f.t[0] && b <= f.t[len(f.t)-1] {
			r += j.gpus * lam[i]
		}
		ps = append(ps, piece{a, b, r})
	}
	n := len(f.v)
	add(math.MinInt64, f.t[0], 0)
	for i := f.piece(lo); i < n && f.t[i] < hi; i++ {
		add(f.t[i], f.t[i+1], i)
	}
	add(f.t[n], math.MaxInt64, n-1)
	slices.SortStableFunc(ps, func(x, y piece) int {
		switch {
		case x.rate < y.rate:
			return -1
		case x.rate > y.rate:
			return 1
		}
		return 0
	})
	need := j.dur
	var out []seg
	var cost float64
	for _, p := range ps {
		if need <= 0 {
			break
		}
		d := min(p.b-p.a, need)
		out = append(out, seg{region: -1, start: p.a, end: p.a + d})
		cost += p.rate * float64(d) / 1e9
		need -= d
	}
	slices.SortFunc(out, func(x, y seg) int { return int(sign(x.start - y.start)) })
	// Merge touching pieces into one segment.
	merged := out[:0]
	for _, s := range out {
		if k := len(merged); k > 0 && merged[k-1].end == s.start {
			merged[k-1].end = s.end
			continue
		}
		merged = append(merged, s)
	}
	return merged, cost
}

// fits says whether j counts against rg's capacity: a job larger than the
// region runs without waiting (there is nothing to wait for), so it is left
// out of the capacity constraint, here and in the pools.
func fits(j *oracleJob, rg *simRegion) bool {
	return rg.capacity > 0 && j.gpus <= float64(rg.capacity)
}

func sign(x int64) int64 {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// solveOne returns the oracle's placement of j under penalties lams
// (indexed by region; nil entries mean none): the cheapest region and
// window that meet the deadline, or, when none can, a run from submit in
// the cheapest region (a deadline miss every policy shares).
func solveOne(j *oracleJob, regions []*simRegion, lams []penalty) ([]seg, float64) {
	lo, hi := j.submit, j.deadline-j.dur
	if hi < lo {
		hi = lo
	}
	var best []seg
	bestC := math.Inf(1)
	for _, r := range j.regions {
		var lam penalty
		if lams != nil {
			lam = lams[r]
		}
		rg := regions[r]
		if j.interruptible && j.deadline-j.submit > j.dur {
			ss, c := bestIntervals(j, rg, lam, j.submit, j.deadline)
			if c < bestC {
				for k := range ss {
					ss[k].region = r
				}
				best, bestC = ss, c
			}
			continue
		}
		s, c := bestContiguous(j, rg, lam, lo, hi)
		if c < bestC {
			best, bestC = []seg{{region: r, start: s, end: s + j.dur}}, c
		}
	}
	return best, bestC
}
