package backtest

import (
	"container/heap"
	"slices"
	"time"

	"github.com/greenq/greenq/policy"
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
	out[g.k] = joinSegs(out[g.k], placed)
	s.ran[g.k] += placed[0].end - placed[0].start
	rest := *g.cur
	rest.Segments = slices.Clone(g.cur.Segments[1:])
	g.cur, g.running = &rest, true
	heap.Push(h, release{at: placed[0].end, k: g.k, resume: true, ver: int64(g.segVer)})
	s.watchSegment(g, placed[0], out[g.k][len(out[g.k])-1].start, h)
	return true
}

// joinSegs appends placed to have, joining a segment to the one before it
// where they touch in one region (a job re-decided at a tick that goes on
// running has not paused).
func joinSegs(have, placed []seg) []seg {
	for _, p := range placed {
		if n := len(have); n > 0 && have[n-1].end == p.start && have[n-1].region == p.region {
			have[n-1].end = p.end
			continue
		}
		have = append(have, p)
	}
	return have
}

// watchSegment records that g runs p, on from since (p's start or, where
// it goes on from a segment before, that one's), and unless
// Config.runSegments schedules a re-decision at the first tick inside it.
func (s *sim) watchSegment(g *gJob, p seg, since int64, h *releaseHeap) {
	g.segA, g.segB, g.since = p.start, p.end, since
	tick := int64(s.cfg.Tick)
	if s.cfg.runSegments || s.bounded || tick <= 0 || !s.jobs[g.k].Interruptible {
		return
	}
	if at := (p.start/tick + 1) * tick; at < p.end {
		heap.Push(h, release{at: at, k: g.k, redecide: true, ver: int64(g.segVer)})
	}
}

// cutSegment pauses g, running its segment, at t: the segment ends there
// and g is to be planned again for what is left, its current plan (the rest
// of the segment, then its later windows) kept unless a better one is
// found. A plan that goes on at t runs on at once. It returns g.
func (s *sim) cutSegment(g *gJob, t int64, out [][]seg, done *int) *gJob {
	last := &out[g.k][len(out[g.k])-1]
	last.end = t
	cur := policy.Assignment{JobID: s.jobs[g.k].ID, Region: g.cur.Region, Segments: []policy.Window{{Start: fromNS(t), End: fromNS(g.segB)}}}
	if g.running {
		s.ran[g.k] -= g.segB - t
		cur.Segments = append(cur.Segments, g.cur.Segments...)
	} else {
		s.ran[g.k] += t - g.segA
		*done--
	}
	g.cur, g.running, g.released = &cur, false, false
	g.segVer++
	return g
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
