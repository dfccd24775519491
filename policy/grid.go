package policy

import (
	"math"
	"math/bits"
	"slices"
	"sort"
	"time"

	"github.com/greenq/greenq/forecast"
)

// maxGridSlots bounds the slots a round considers for starts, so a tiny Slot
// (1s in demos) cannot blow up memory; starts beyond it are not considered.
const maxGridSlots = 1 << 16

// maxTailSlots bounds how far past the last start slot the intensity and
// price arrays reach; runs longer than that are integrated at the region's
// fill value and base price past them.
const maxTailSlots = 1 << 16

// maxCapSlots bounds the free-GPU array of a region with a capacity. It
// covers every slot a run starting by the last start slot can touch (see
// capSlots), up to this many: about 120 years at 15-minute slots, 48 days
// at 1s. A slot past it counts as full, so no run is planned there in a
// bounded region.
const maxCapSlots = 1 << 22

// maxBoundSlots is the longest grid that gets the sparse tables behind
// cannotBeat (n log n floats); a longer one (tiny slots) searches every
// region.
const maxBoundSlots = 1 << 12

// unbounded is the free capacity of a region with no capacity limit.
const unbounded = math.MaxInt32

// grid is one round's precomputed view of every region on the slot grid:
// slot i covers [origin + i·slot, origin + (i+1)·slot). Positions are
// measured in slots from origin, as float64 so an unaligned start (now) fits.
type grid struct {
	origin time.Time
	slot   time.Duration
	slotH  float64 // slot length in hours
	now    float64 // Input.Now's position: usages are counted from it on
	n      int     // slots in which a run may start
	l      int     // slots the intensity and price arrays cover (n plus the longest run)
	lf     int     // slots the free-GPU arrays cover: every slot a run can touch
	rs     []regionGrid
	byName map[string]int
	// free holds, per lane (see regionGrid.lane), the free GPUs per slot a
	// job of that lane may take (len lf); nil for an unbounded region.
	free [][]int32
	// raw holds, per lane of a region split into size classes, what is
	// left of that class's own capacity; free is the running minimum of
	// raw over the region's lanes up to it. Nil for other lanes.
	raw [][]int32
}

// regionGrid holds one region's per-slot values and their prefix sums, so
// the mean intensity or the price over any run is a few loads away.
type regionGrid struct {
	name     string
	pue      float64
	v        []float64 // intensity per slot (gCO2e/kWh), len l+1
	p        []float64 // prefix sums of v, len l+2
	price    []float64 // USD per GPU-hour per slot, len l+1
	q        []float64 // prefix sums of price × slotH, len l+2
	maxPrice float64   // the dearest slot, to skip cap checks that cannot bind
	fill     float64   // intensity where the series says nothing
	basePr   float64   // price past the arrays
	// lane is the region's first entry in grid.free. A region whose
	// machines are known (Region.Workers) has one lane per size class and
	// one more for jobs larger than every machine up (always full); any
	// other has one lane.
	lane int
	// sizes are the distinct machine sizes, ascending, when the region is
	// split into size classes; nil otherwise. Class c (lane+c) holds jobs
	// of sizes[c-1]+1 … sizes[c] GPUs, which only machines of at least
	// sizes[c] GPUs can run: the GPUs jobs of class c and above hold may
	// not pass the GPUs of those machines.
	sizes []int32
	// minV and minPr are sparse tables of v and price: level i holds the
	// least value over each 2^i slots, for bounds in O(1).
	minV, minPr [][]float64
	bounded     bool
}

// pos returns t as a position in slots from the grid origin.
func (g *grid) pos(t time.Time) float64 {
	return float64(t.Sub(g.origin)) / float64(g.slot)
}

// at returns the time at position x.
func (g *grid) at(x float64) time.Time {
	k := math.Floor(x)
	return g.origin.Add(time.Duration(k) * g.slot).Add(time.Duration(math.Round((x - k) * float64(g.slot))))
}

// cum returns the integral of intensity from the origin to position x, in
// (gCO2e/kWh)·slots.
func (r *regionGrid) cum(x float64) float64 {
	if x <= 0 {
		return x * r.v[0]
	}
	l := len(r.v) - 1
	k := int(x)
	if k >= l {
		return r.p[l] + (x-float64(l))*r.fill
	}
	return r.p[k] + (x-float64(k))*r.v[k]
}

// cumPrice returns the integral of price from the origin to position x, in
// USD per GPU.
func (r *regionGrid) cumPrice(x float64, slotH float64) float64 {
	if x <= 0 {
		return x * r.price[0] * slotH
	}
	l := len(r.price) - 1
	k := int(x)
	if k >= l {
		return r.q[l] + (x-float64(l))*r.basePr*slotH
	}
	return r.q[k] + (x-float64(k))*r.price[k]*slotH
}

// buildGrid lays every region on the slot grid. last is the latest start any
// job may take, maxRun the longest run in slots and runEnd(n) the latest
// position a run starting by slot n (from an earliest start, or a current
// plan) reaches.
func buildGrid(in Input, cfg Config, last time.Time, maxRun int, runEnd func(n int) float64) *grid {
	g := &grid{origin: in.Now.Truncate(cfg.Slot), slot: cfg.Slot, slotH: cfg.Slot.Hours()}
	g.now = g.pos(in.Now)
	if h := in.Now.Add(cfg.Horizon); last.After(h) {
		last = h
	}
	n := int(math.Floor(g.pos(last))) + 1
	n = max(1, min(n, maxGridSlots))
	g.n = n
	g.l = n + min(maxRun+1, maxTailSlots)
	g.lf = capSlots(n, maxRun, runEnd(n))
	g.rs = make([]regionGrid, len(in.Regions))
	g.byName = make(map[string]int, len(in.Regions))
	var fills []float64
	for i, reg := range in.Regions {
		if _, dup := g.byName[reg.Name]; !dup {
			g.byName[reg.Name] = i
		}
		r := &g.rs[i]
		r.name = reg.Name
		r.pue = reg.PUE
		if r.pue <= 0 {
			r.pue = 1
		}
		r.v = make([]float64, g.l+1)
		r.fill = g.layCarbon(reg.Series, r.v)
		if !math.IsNaN(r.fill) {
			fills = append(fills, r.fill)
		}
		r.price = make([]float64, g.l+1)
		r.basePr = reg.Price.USDPerGPUHour
		g.layPrice(reg.Price, r)
		g.layLanes(reg, r)
	}
	// A region with no signal at all is treated as average: neither
	// favoured nor avoided on carbon, so cost and the others decide.
	neutral := 0.0
	for _, f := range fills {
		neutral += f / float64(len(fills))
	}
	for i := range g.rs {
		r := &g.rs[i]
		if math.IsNaN(r.fill) {
			r.fill = neutral
			for k := range r.v {
				r.v[k] = neutral
			}
		}
		r.p = prefix(r.v, 1)
		r.q = prefix(r.price, g.slotH)
		if len(r.v) <= maxBoundSlots {
			r.minV = sparseMin(r.v)
			r.minPr = sparseMin(r.price)
		}
	}
	return g
}

func sparseMin(v []float64) [][]float64 {
	t := [][]float64{v}
	for w := 1; 2*w <= len(v); w *= 2 {
		prev := t[len(t)-1]
		next := make([]float64, len(prev)-w)
		for i := range next {
			next[i] = min(prev[i], prev[i+w])
		}
		t = append(t, next)
	}
	return t
}

// rangeMin returns the least intensity and price over slots [a, b); slots
// past the arrays count at the fill value and base price.
func (r *regionGrid) rangeMin(a, b int) (float64, float64) {
	mv, mp := math.Inf(1), math.Inf(1)
	if n := len(r.v); b >= n-1 {
		// Integrals read the fill value and base price from slot n-1 on.
		mv, mp = r.fill, r.basePr
		b = n
	}
	if a < b {
		lvl := bits.Len(uint(b-a)) - 1
		w := 1 << lvl
		mv = min(mv, r.minV[lvl][a], r.minV[lvl][b-w])
		mp = min(mp, r.minPr[lvl][a], r.minPr[lvl][b-w])
	}
	return mv, mp
}

func prefix(v []float64, scale float64) []float64 {
	p := make([]float64, len(v)+1)
	for i, x := range v {
		p[i+1] = p[i] + x*scale
	}
	return p
}

// layCarbon writes the time-weighted mean intensity of each slot into v and
// returns the value used where the series is silent: the mean over what it
// covers inside the grid, else over all its points, else NaN (no signal).
func (g *grid) layCarbon(s forecast.Series, v []float64) float64 {
	pts := s.Points
	o := g.origin.UnixNano()
	sl := int64(g.slot)
	j := sort.Search(len(pts), func(i int) bool { return pts[i].End.UnixNano() > o })
	var sumAll, covAll float64
	missing := make([]bool, len(v))
	anyMissing := false
	for i := range v {
		a := o + int64(i)*sl
		b := a + sl
		var sum, cov float64
		for j < len(pts) && pts[j].End.UnixNano() <= a {
			j++
		}
		for jj := j; jj < len(pts); jj++ {
			ps, pe := pts[jj].Start.UnixNano(), pts[jj].End.UnixNano()
			if ps >= b {
				break
			}
			lo, hi := max(ps, a), min(pe, b)
			if hi > lo {
				d := float64(hi - lo)
				sum += pts[jj].GCO2PerKWh * d
				cov += d
			}
		}
		if cov > 0 {
			v[i] = sum / cov
			sumAll += sum
			covAll += cov
		} else {
			missing[i] = true
			anyMissing = true
		}
	}
	fill := math.NaN()
	if covAll > 0 {
		fill = sumAll / covAll
	} else {
		var sum, cov float64
		for _, p := range pts {
			d := float64(p.End.Sub(p.Start))
			if d > 0 {
				sum += p.GCO2PerKWh * d
				cov += d
			}
		}
		if cov > 0 {
			fill = sum / cov
		}
	}
	if anyMissing && !math.IsNaN(fill) {
		for i, m := range missing {
			if m {
				v[i] = fill
			}
		}
	}
	return fill
}

// layPrice writes each slot's price (the schedule's price at the slot's
// start) and the dearest one.
func (g *grid) layPrice(ps PriceSchedule, r *regionGrid) {
	r.maxPrice = ps.USDPerGPUHour
	if len(ps.TimeOfUse) == 0 {
		for i := range r.price {
			r.price[i] = ps.USDPerGPUHour
		}
		return
	}
	for i := range r.price {
		p := ps.At(g.origin.Add(time.Duration(i) * g.slot))
		r.price[i] = p
		r.maxPrice = max(r.maxPrice, p)
	}
}

// capSlots returns the length of the free-GPU arrays: every slot a run
// starting by slot n can touch (the longest run from the last start slot,
// or runEnd), capped at maxCapSlots.
func capSlots(n, maxRun int, runEnd float64) int {
	l := n + maxRun + 1
	if e := math.Ceil(runEnd) + 1; e > float64(l) {
		l = int(min(e, maxCapSlots))
	}
	return max(1, min(l, maxCapSlots))
}

// layLanes gives region r its lanes in g.free (and g.raw): one unbounded
// lane, one lane of Capacity GPUs, or one per size class of its Workers
// and one always full for jobs larger than every machine up.
func (g *grid) layLanes(reg Region, r *regionGrid) {
	r.lane = len(g.free)
	var sizes []int32
	for _, w := range reg.Workers {
		if w > 0 {
			sizes = append(sizes, int32(min(w, unbounded)))
		}
	}
	if len(sizes) == 0 {
		var f []int32
		if reg.Capacity > 0 {
			r.bounded = true
			f = make([]int32, g.lf)
			g.layCapacity(reg, f, int64(min(reg.Capacity, unbounded)), 0)
		}
		g.free, g.raw = append(g.free, f), append(g.raw, nil)
		return
	}
	r.bounded = true
	slices.Sort(sizes)
	r.sizes = slices.Compact(slices.Clone(sizes))
	for c, s := range r.sizes {
		// Class c's machines: every one of at least s GPUs.
		var capc int64
		for _, w := range sizes {
			if w >= s {
				capc += int64(w)
			}
		}
		raw := make([]int32, g.lf)
		g.layCapacity(reg, raw, min(capc, unbounded), r.classMin(c))
		free := slices.Clone(raw)
		if c > 0 {
			prev := g.free[len(g.free)-1]
			for k := range free {
				free[k] = min(free[k], prev[k])
			}
		}
		g.free, g.raw = append(g.free, free), append(g.raw, raw)
	}
	// Jobs larger than every machine up: no room.
	g.free, g.raw = append(g.free, []int32{}), append(g.raw, nil)
}

// classMin returns the fewest GPUs a job of class c has.
func (r *regionGrid) classMin(c int) int32 {
	if c == 0 {
		return 0
	}
	return r.sizes[c-1] + 1
}

// class returns the size class of a job of g GPUs in r: 0 when r is not
// split, len(r.sizes) for one larger than every machine up.
func (r *regionGrid) class(g int32) int {
	c := 0
	for c < len(r.sizes) && r.sizes[c] < g {
		c++
	}
	return c
}

// layCapacity writes the free GPUs per slot: c minus every usage of at
// least minGPUs that overlaps the slot at all after now (a partial overlap
// holds the whole slot; a usage that ended by now holds nothing, so GPUs
// freed earlier in the current slot can be taken at once).
func (g *grid) layCapacity(reg Region, free []int32, c int64, minGPUs int32) {
	// A difference array keeps long usages O(1) each.
	diff := make([]int64, len(free)+1)
	for _, u := range reg.Busy {
		if u.GPUs <= 0 || !u.End.After(u.Start) || int64(u.GPUs) < int64(minGPUs) {
			continue
		}
		end := g.pos(u.End)
		if end <= g.now {
			continue
		}
		a := math.Floor(max(g.pos(u.Start), g.now))
		b := math.Ceil(end)
		a, b = max(a, 0), min(b, float64(len(free)))
		if b <= a {
			continue
		}
		diff[int(a)] += int64(u.GPUs)
		diff[int(b)] -= int64(u.GPUs)
	}
	var used int64
	for i := range free {
		used += diff[i]
		free[i] = int32(max(c-used, 0))
	}
}
