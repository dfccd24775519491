package backtest

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// The reference policy is a simple causal heuristic every back-test scores
// beside greenq, so that each table shows greenq against a baseline that
// uses the same information and nothing more:
//
//   - forecast: the mean of the same hour of day over the last 7 days
//     (168 h), plus the current deviation from that profile (the last
//     complete hour's actual minus the mean of the same hour on the 7 days
//     before it), the deviation decaying linearly to zero over 12 h of lead;
//   - re-decide at submit and at every whole hour after it;
//   - a job that runs in one piece starts when starting now is the best
//     option (in any allowed region) among starting now, at any later whole
//     hour, and at its latest start; when the next decision would come after
//     its latest start, it is started now or at its latest start, whichever
//     the forecast prefers;
//   - an interruptible job runs the current hour when that hour is among
//     the cheapest hours it still needs before its deadline (in the region
//     whose cheapest hours cost least; once it has run, in that region).
//
// It decides without regard to capacity; where regions have one, its runs
// then wait for free GPUs as the now policy's do.
const (
	refDays  = 7
	refDecay = 12 * time.Hour
)

const hourNS = int64(time.Hour)

// refHours is a region's actual series as hourly means, each with the
// instant it became known (the end of the last point it draws on), so that
// a view at t can refuse every hour not yet known at t.
type refHours struct {
	h0      int64 // start of hour 0, Unix ns, a whole UTC hour
	v       []float64
	known   []int64 // math.MaxInt64: no data in that hour
	byLast  map[int64]*refForecast
	maxLead int
}

func newRefHours(s forecast.Series) *refHours {
	first, last := s.Points[0].Start.UnixNano(), s.Points[len(s.Points)-1].End.UnixNano()
	h0 := floorHour(first)
	n := int((last-h0+hourNS-1)/hourNS) + 1
	rh := &refHours{h0: h0, v: make([]float64, n), known: make([]int64, n), byLast: map[int64]*refForecast{}}
	for i := range n {
		a := h0 + int64(i)*hourNS
		mean, covered := s.Mean(fromNS(a), fromNS(a+hourNS))
		if covered == 0 {
			rh.known[i] = math.MaxInt64
			continue
		}
		rh.v[i] = mean
		// The last point overlapping the hour ends last: points are sorted
		// and do not overlap.
		k := sort.Search(len(s.Points), func(j int) bool { return !s.Points[j].Start.Before(fromNS(a + hourNS)) })
		rh.known[i] = s.Points[k-1].End.UnixNano()
	}
	return rh
}

// value returns the mean over the hour starting at h if it was known at t.
func (rh *refHours) value(h, t int64) (float64, bool) {
	i := (h - rh.h0) / hourNS
	if h < rh.h0 || i >= int64(len(rh.v)) || rh.known[i] > t {
		return 0, false
	}
	return rh.v[i], true
}

func floorHour(x int64) int64 {
	q := x / hourNS
	if x < 0 && x%hourNS != 0 {
		q--
	}
	return q * hourNS
}

func hourOfDay(h int64) int {
	return int(((floorHour(h)/hourNS)%24 + 24) % 24)
}

// refForecast is the reference forecast issued from what was known at a
// decision time: a profile per hour of day and the deviation at last.
type refForecast struct {
	last    int64 // start of the last complete hour known; MinInt64: none
	dev     float64
	profile [24]float64
	flat    float64 // mean of the window, for hours of day without data
	has     [24]bool
}

// forecastAt returns the reference forecast for decisions at t, built only
// from hours known by the whole hour at or before t, so every decision of
// that hour shares one forecast whatever order they are made in.
func (rh *refHours) forecastAt(t int64) *refForecast {
	t = floorHour(t)
	last := t - hourNS
	if f, ok := rh.byLast[last]; ok {
		return f
	}
	f := &refForecast{last: math.MinInt64}
	var sum [24]float64
	var n [24]int
	var all float64
	var nAll int
	for k := range refDays * 24 {
		h := last - int64(k)*hourNS
		if v, ok := rh.value(h, t); ok {
			d := hourOfDay(h)
			sum[d] += v
			n[d]++
			all += v
			nAll++
			if f.last == math.MinInt64 {
				f.last = h
			}
		}
	}
	if nAll > 0 {
		f.flat = all / float64(nAll)
	}
	for d := range 24 {
		if n[d] > 0 {
			f.profile[d], f.has[d] = sum[d]/float64(n[d]), true
		}
	}
	if f.last != math.MinInt64 {
		// The deviation of the last known hour from the same hour's mean
		// over the 7 days before it.
		var ps float64
		var pn int
		for d := 1; d <= refDays; d++ {
			if v, ok := rh.value(f.last-int64(d)*24*hourNS, t); ok {
				ps += v
				pn++
			}
		}
		if pn > 0 {
			cur, _ := rh.value(f.last, t)
			f.dev = cur - ps/float64(pn)
		}
	}
	rh.byLast[last] = f
	return f
}

// at returns the forecast for the hour starting at h (a whole hour).
func (f *refForecast) at(h int64) float64 {
	base := f.flat
	if d := hourOfDay(h); f.has[d] {
		base = f.profile[d]
	}
	if f.last == math.MinInt64 {
		return base
	}
	lead := float64(h-f.last) / float64(refDecay)
	if w := 1 - lead; w > 0 {
		base += f.dev * w
	}
	return max(0, base)
}

// refCurve is one region's forecast from one decision as hourly values
// from the hour holding the decision on, with prefix sums for integrals.
type refCurve struct {
	h0  int64
	v   []float64
	cum []float64 // value·seconds from h0
	pue float64
}

func newRefCurve(f *refForecast, t, until int64, pue float64) *refCurve {
	h0 := floorHour(t)
	n := int((until-h0+hourNS-1)/hourNS) + 1
	c := &refCurve{h0: h0, v: make([]float64, n), cum: make([]float64, n+1), pue: pue}
	for i := range n {
		c.v[i] = f.at(h0 + int64(i)*hourNS)
		c.cum[i+1] = c.cum[i] + c.v[i]*3600
	}
	return c
}

// prim is the integral from h0 to x, the last hour extending beyond.
func (c *refCurve) prim(x int64) float64 {
	i := int((x - c.h0) / hourNS)
	if i >= len(c.v) {
		i = len(c.v) - 1
	}
	return c.cum[i] + c.v[i]*float64(x-c.h0-int64(i)*hourNS)/1e9
}

// cost is the forecast gCO2e per kWh-second-ish weight of running over
// [a, b), PUE included: comparable across regions for one job.
func (c *refCurve) cost(a, b int64) float64 {
	if b <= a {
		return 0
	}
	return c.pue * (c.prim(b) - c.prim(a))
}

// refJob is one job's state under the reference policy.
type refJob struct {
	k      int
	left   int64 // run time still needed
	region int   // -1 until it first runs
	segs   []seg
}

// runReference replays every job under the reference policy. Jobs do not
// interact (it ignores capacity when deciding), so each is replayed on its
// own decision times: its submit, then every whole hour until it is done.
// Where regions have a capacity, its runs then wait for free GPUs, in
// order of their first start, as the now policy's do.
func (s *sim) runReference() [][]seg {
	hours := make([]*refHours, len(s.regions))
	for r, rg := range s.regions {
		hours[r] = newRefHours(rg.actual)
	}
	out := make([][]seg, len(s.jobs))
	for k := range s.jobs {
		out[k] = s.referenceJob(k, hours)
	}
	if !s.bounded {
		return out
	}
	order := make([]int, 0, len(out))
	for k := range out {
		order = append(order, k)
	}
	sort.SliceStable(order, func(a, b int) bool { return out[order[a]][0].start < out[order[b]][0].start })
	pools := s.newPools()
	placed := make([][]seg, len(out))
	for _, k := range order {
		placed[k] = pools.place(out[k][0].region, s.jobs[k].GPUs, out[k])
	}
	return placed
}

// referenceJob decides job k at each of its decision times.
func (s *sim) referenceJob(k int, hours []*refHours) []seg {
	j := &s.jobs[k]
	st := &refJob{k: k, left: int64(j.Duration), region: -1}
	submit, deadline := ns(j.Submit), ns(j.Deadline)
	for t := submit; st.left > 0; t = floorHour(t) + hourNS {
		if deadline-t < st.left {
			// Too late to wait: run the rest at once, where the forecast of
			// running now is lowest (or where it already runs).
			r := st.region
			if r < 0 {
				r = s.refBestNow(k, hours, t, st.left)
			}
			s.refRun(st, t, r, t, t+st.left)
			break
		}
		if j.Interruptible {
			s.refInterruptible(st, hours, t)
		} else if start, r, ok := s.refContiguous(st, hours, t); ok {
			s.refRun(st, t, r, start, start+st.left)
		}
	}
	return st.segs
}

// refRun records a run of job st over [a, b) in region r decided at t,
// joining it to the previous segment when they touch.
func (s *sim) refRun(st *refJob, t int64, r int, a, b int64) {
	j := &s.jobs[st.k]
	if s.cfg.OnReferenceDecision != nil {
		s.cfg.OnReferenceDecision(Decision{At: fromNS(t), JobID: j.ID, Region: s.regions[r].name, Segments: []policy.Window{{Start: fromNS(a), End: fromNS(b)}}})
	}
	st.region = r
	st.left -= b - a
	if n := len(st.segs); n > 0 && st.segs[n-1].end == a && st.segs[n-1].region == r {
		st.segs[n-1].end = b
		return
	}
	st.segs = append(st.segs, seg{region: r, start: a, end: b})
}

func (s *sim) refCurve(hours []*refHours, r int, t, until int64) *refCurve {
	return newRefCurve(hours[r].forecastAt(t), t, until, s.regions[r].pue)
}

// refBestNow returns the allowed region where running [t, t+d) is
// forecast cheapest (the first on ties).
func (s *sim) refBestNow(k int, hours []*refHours, t, d int64) int {
	best, bestC := s.allowed[k][0], math.Inf(1)
	for _, r := range s.allowed[k] {
		if c := s.refCurve(hours, r, t, t+d).cost(t, t+d); c < bestC {
			best, bestC = r, c
		}
	}
	return best
}

// refContiguous decides a job that runs in one piece at t: it returns the
// start and region when the job starts now (or, when the next decision
// would come after its latest start, at that latest start).
func (s *sim) refContiguous(st *refJob, hours []*refHours, t int64) (int64, int, bool) {
	j := &s.jobs[st.k]
	d := st.left
	latest := ns(j.Deadline) - d
	next := floorHour(t) + hourNS
	type cand struct {
		start int64
		r     int
		c     float64
	}
	best := cand{c: math.Inf(1)}
	var nowBest cand
	nowBest.c = math.Inf(1)
	for _, r := range s.allowed[st.k] {
		c := s.refCurve(hours, r, t, ns(j.Deadline))
		try := func(start int64) {
			x := cand{start, r, c.cost(start, start+d)}
			if x.c < best.c || (x.c == best.c && x.start < best.start) {
				best = x
			}
			if start == t && x.c < nowBest.c {
				nowBest = x
			}
		}
		try(t)
		for h := next; h <= latest; h += hourNS {
			try(h)
		}
		if latest > t {
			try(latest)
		}
	}
	switch {
	case nowBest.c <= best.c:
		return t, nowBest.r, true
	case next > latest:
		// No later decision before the latest start: commit now to the
		// better of now and the latest start.
		return best.start, best.r, true
	}
	return 0, 0, false
}

// refInterruptible decides an interruptible job at t: it runs the current
// hour (to the next whole hour, the deadline, or the end of its work) when
// that hour is among the cheapest it still needs.
func (s *sim) refInterruptible(st *refJob, hours []*refHours, t int64) {
	j := &s.jobs[st.k]
	deadline := ns(j.Deadline)
	end := min(floorHour(t)+hourNS, deadline)
	regions := s.allowed[st.k]
	if st.region >= 0 {
		regions = []int{st.region}
	}
	type slot struct {
		a, b   int64
		perSec float64
	}
	bestR, bestCost, bestRun := -1, math.Inf(1), false
	var slots []slot
	for _, r := range regions {
		c := s.refCurve(hours, r, t, deadline)
		slots = slots[:0]
		for a, b := t, end; a < deadline; a, b = b, min(b+hourNS, deadline) {
			slots = append(slots, slot{a, b, c.cost(a, b) / (float64(b-a) / 1e9)})
		}
		// Cheapest first; equal costs go to the earlier hour, so the
		// current hour wins ties.
		slices.SortStableFunc(slots, func(x, y slot) int {
			switch {
			case x.perSec < y.perSec:
				return -1
			case x.perSec > y.perSec:
				return 1
			}
			return 0
		})
		need, total, runNow := st.left, 0.0, false
		for _, sl := range slots {
			if need <= 0 {
				break
			}
			use := min(need, sl.b-sl.a)
			total += sl.perSec * float64(use) / 1e9
			need -= use
			if sl.a == t {
				runNow = true
			}
		}
		if total < bestCost {
			bestR, bestCost, bestRun = r, total, runNow
		}
	}
	if bestRun {
		s.refRun(st, t, bestR, t, t+min(st.left, end-t))
	}
}
