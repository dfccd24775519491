package policy

import (
	"math"
)

// Occupancy: the decisions held while capacity is shared out and the
// free-GPU counts they take.

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

func (pl *planner) snapshotFree() *capView { return pl.cloneView() }

func (pl *planner) restoreFree(snap *capView) {
	for i := range pl.g.free {
		copy(pl.g.free[i], snap.free[i])
		copy(pl.g.raw[i], snap.raw[i])
	}
}
