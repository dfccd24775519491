package backtest

import (
	"container/heap"
	"slices"
	"time"
)

// startSegment starts the first segment of g's plan when it is one of
// several: the job runs it, pauses, and at its end is planned again for
// what is left, as the server re-plans a paused job (later segments are
// not committed at the first one's start). It reports whether it did.
func (s *sim) startSegment(g *gJob, pools *pools, h *releaseHeap, out [][]seg) bool {
	j := &s.jobs[g.k]
	segs := s.toSegs(g.cur)
	if len(segs) < 2 || segs[0].end-segs[0].start >= int64(j.Duration)-s.ran[g.k] {
		return false
	}
	placed := pools.place(segs[0].region, j.GPUs, segs[:1])
	out[g.k] = append(out[g.k], placed...)
	s.ran[g.k] += placed[0].end - placed[0].start
	rest := *g.cur
	rest.Segments = slices.Clone(g.cur.Segments[1:])
	g.cur, g.running = &rest, true
	heap.Push(h, release{at: placed[0].end, k: g.k, resume: true})
	return true
}

// toPlan is the run time greenq's planner is told job k still needs: its
// estimate less what it has run (at least a second).
func (s *sim) toPlan(k int) time.Duration {
	d := s.jobs[k].planned()
	if s.ran != nil {
		d -= time.Duration(s.ran[k])
	}
	return max(d, time.Second)
}

// actualSegs returns planned segments as they run for dur: the tail cut
// where the job needs less than planned, the last segment run on where it
// needs more.
func actualSegs(segs []seg, dur int64) []seg {
	left := dur
	for i := range segs {
		d := segs[i].end - segs[i].start
		if d >= left || i == len(segs)-1 {
			segs[i].end = segs[i].start + left
			return segs[:i+1]
		}
		left -= d
	}
	return segs
}
