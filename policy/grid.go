package policy

import (
	"math"
	"sort"
	"time"

	"github.com/greenq/greenq/forecast"
)

// maxGridSlots bounds the slots a round considers for starts, so a tiny Slot
// (1s in demos) cannot blow up memory; starts beyond it are not considered.
const maxGridSlots = 1 << 16

// maxTailSlots bounds how far past the last start slot the per-slot arrays
// reach; runs longer than that are integrated at the region's fill value and
// base price, and their capacity past the arrays is not checked.
const maxTailSlots = 1 << 16

// unbounded is the free capacity of a region with no capacity limit.
const unbounded = math.MaxInt32

// grid is one round's precomputed view of every region on the slot grid:
// slot i covers [origin + i·slot, origin + (i+1)·slot). Positions are
// measured in slots from origin, as float64 so an unaligned start (now) fits.
type grid struct {
	origin time.Time
	slot   time.Duration
	slotH  float64 // slot length in hours
	n      int     // slots in which a run may start
	l      int     // slots the arrays cover (n plus the longest run)
	rs     []regionGrid
	byName map[string]int
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
	free     []int32   // free GPUs per slot (len l); nil when unbounded
	bounded  bool
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
// job may take and maxRun the longest run in slots.
func buildGrid(in Input, cfg Config, last time.Time, maxRun int) *grid {
	g := &grid{origin: in.Now.Truncate(cfg.Slot), slot: cfg.Slot, slotH: cfg.Slot.Hours()}
	if h := in.Now.Add(cfg.Horizon); last.After(h) {
		last = h
	}
	n := int(math.Floor(g.pos(last))) + 1
	n = max(1, min(n, maxGridSlots))
	g.n = n
	g.l = n + min(maxRun+1, maxTailSlots)
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
		if reg.Capacity > 0 {
			r.bounded = true
			r.free = make([]int32, g.l)
			g.layCapacity(reg, r.free)
		}
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
	}
	return g
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

// layCapacity writes the free GPUs per slot: capacity minus every usage that
// overlaps the slot at all (a partial overlap holds the whole slot).
func (g *grid) layCapacity(reg Region, free []int32) {
	c := int32(min(reg.Capacity, unbounded))
	for i := range free {
		free[i] = c
	}
	for _, u := range reg.Busy {
		if u.GPUs <= 0 || !u.End.After(u.Start) {
			continue
		}
		a := int(math.Floor(g.pos(u.Start)))
		b := int(math.Ceil(g.pos(u.End)))
		a, b = max(a, 0), min(b, len(free))
		for k := a; k < b; k++ {
			free[k] = max(free[k]-int32(min(u.GPUs, unbounded)), 0)
		}
	}
}
