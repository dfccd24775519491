package backtest

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
)

// simRegion is one region as the back-test holds it.
type simRegion struct {
	name     string
	pue      float64
	capacity int
	actual   forecast.Series
	step     *stepFn
	noisy    forecast.Series // the planner's view when ForecastNoise > 0
	vintages []forecast.Series
	// est caches the forecaster's output issued at estAt.
	est   forecast.Series
	estAt int64
}

// sim is one back-test run.
type sim struct {
	cfg     Config
	regions []*simRegion
	byName  map[string]int
	jobs    []Job
	allowed [][]int // region indexes per job, in preference order
	bounded bool    // some region has a capacity
	ran     []int64 // greenq: time each job has run in finished segments (ns)
}

// Run loads the inputs, replays the workload under the now, greenq,
// reference and oracle policies and scores them on the actual series. progress, if not
// nil, is called as greenq releases jobs. Input errors are *greenq.Error
// (code invalid_argument), wrapped.
func Run(ctx context.Context, cfg Config, progress func(done, total int)) (Result, error) {
	cfg = cfg.WithDefaults()
	s, err := load(cfg)
	if err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	res := Result{Jobs: len(s.jobs)}
	for _, r := range s.regions {
		res.Regions = append(res.Regions, r.name)
	}
	if len(s.jobs) == 0 {
		res.Policies.GreenQ.PlannerSeconds = new(float64)
		res.Policies.GreenQ.FractionOfOracleSavings = new(float64)
		res.Policies.Reference.FractionOfOracleSavings = new(float64)
		res.Policies.Oracle.Exact = ptr(!s.bounded)
		return res, nil
	}
	nowSegs := s.runNow()
	greenSegs, gstats, err := s.runGreenQ(ctx, progress)
	if err != nil {
		return Result{}, err
	}
	refSegs := s.runReference()
	res.Policies.Now = s.scoreAll(nowSegs)
	res.Policies.GreenQ = s.scoreAll(greenSegs)
	res.Policies.Reference = s.scoreAll(refSegs)
	res.Policies.GreenQ.PlannerSeconds = ptr(gstats.plannerSeconds)
	res.Policies.GreenQ.PlanRounds = gstats.rounds
	res.Policies.GreenQ.PlannerFallbacks = gstats.fallbacks
	res.Policies.GreenQ.DominanceViolations = ptr(len(gstats.violators))
	ub := max(res.Policies.Now.GCO2, res.Policies.GreenQ.GCO2)
	oracleSegs, bound, err := s.runOracle(ctx, ub)
	if err != nil {
		return Result{}, err
	}
	res.Policies.Oracle = s.scoreAll(oracleSegs)
	res.Policies.Oracle.Exact = ptr(!s.bounded)
	if s.bounded {
		res.Policies.Oracle.GCO2 = bound
	}
	var refFrac float64
	if d := res.Policies.Now.GCO2 - res.Policies.Oracle.GCO2; d > 1e-9*math.Abs(res.Policies.Now.GCO2) {
		res.FractionOfOracleSavings = (res.Policies.Now.GCO2 - res.Policies.GreenQ.GCO2) / d
		refFrac = (res.Policies.Now.GCO2 - res.Policies.Reference.GCO2) / d
	}
	res.Policies.GreenQ.FractionOfOracleSavings = ptr(res.FractionOfOracleSavings)
	res.Policies.Reference.FractionOfOracleSavings = ptr(refFrac)
	res.Placements = s.placements(greenSegs)
	res.ReferencePlacements = s.placements(refSegs)
	if cfg.PlacementsFile != "" {
		if err := writePlacementsFile(cfg.PlacementsFile, res.Placements); err != nil {
			return Result{}, err
		}
	}
	progress(len(s.jobs), len(s.jobs))
	return res, nil
}

func ptr[T any](v T) *T { return &v }

func writePlacementsFile(path string, ps []Placement) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create placements: %w", err)
	}
	if err := WritePlacements(fh, ps); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write placements: %w", err)
	}
	return nil
}

// load reads the inputs and checks them against each other.
func load(cfg Config) (*sim, error) {
	if cfg.ForecastNoise < 0 || math.IsNaN(cfg.ForecastNoise) || math.IsInf(cfg.ForecastNoise, 0) {
		return nil, greenq.Invalid("forecast_noise", "want a number ≥ 0, got %v", cfg.ForecastNoise)
	}
	carbon := cfg.Carbon
	if carbon == nil {
		if cfg.CarbonDir == "" {
			return nil, greenq.Invalid("carbon", "is required (a directory of <region>.csv files)")
		}
		var err error
		if carbon, err = ReadCarbonDir(cfg.CarbonDir); err != nil {
			return nil, fmt.Errorf("load carbon: %w", err)
		}
	}
	if len(carbon) == 0 {
		return nil, greenq.Invalid("carbon", "no region given")
	}
	jobs := cfg.Jobs
	if jobs == nil {
		if cfg.WorkloadFile == "" {
			return nil, greenq.Invalid("workload", "is required (a CSV file)")
		}
		var err error
		if jobs, err = ReadWorkloadFile(cfg.WorkloadFile); err != nil {
			return nil, fmt.Errorf("load workload: %w", err)
		}
	}
	vintages := cfg.Forecasts
	if vintages == nil && cfg.ForecastsDir != "" {
		var err error
		if vintages, err = ReadForecastsDir(cfg.ForecastsDir); err != nil {
			return nil, fmt.Errorf("load forecasts: %w", err)
		}
	}
	if len(vintages) > 0 && cfg.ForecastNoise > 0 {
		return nil, greenq.Invalid("forecast_noise", "cannot be combined with forecasts: the noise replaces every forecast")
	}
	s := &sim{cfg: cfg, byName: map[string]int{}, jobs: jobs}
	names := make([]string, 0, len(carbon))
	for n := range carbon {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		ser := carbon[n]
		if len(ser.Points) == 0 {
			return nil, greenq.Invalid("carbon", "region %s has no data", n)
		}
		if ser.Signal == "" {
			ser.Signal = forecast.SignalAverage
		}
		if err := ser.Validate(); err != nil {
			return nil, greenq.Invalid("carbon", "%v", err)
		}
		rg := &simRegion{name: n, pue: 1, actual: ser, step: newStepFn(ser), vintages: vintages[n]}
		s.regions = append(s.regions, rg)
		s.byName[n] = i
		if cfg.ForecastNoise > 0 {
			rg.noisy = noisy(ser, cfg.ForecastNoise, cfg.NoiseSeed)
		}
	}
	for r := range vintages {
		if _, ok := s.byName[r]; !ok {
			return nil, greenq.Invalid("forecasts", "region %s has forecasts but no carbon file", r)
		}
	}
	for r, c := range cfg.Capacity {
		i, ok := s.byName[r]
		if !ok {
			return nil, greenq.Invalid("capacity", "unknown region %s (known: %v)", r, names)
		}
		if c < 1 {
			return nil, greenq.Invalid("capacity", "region %s: want GPUs ≥ 1, got %d", r, c)
		}
		s.regions[i].capacity = c
		s.bounded = true
	}
	for r, p := range cfg.PUE {
		i, ok := s.byName[r]
		if !ok {
			return nil, greenq.Invalid("pue", "unknown region %s (known: %v)", r, names)
		}
		if p < 1 || math.IsNaN(p) || math.IsInf(p, 0) {
			return nil, greenq.Invalid("pue", "region %s: want a number ≥ 1, got %v", r, p)
		}
		s.regions[i].pue = p
	}
	seen := map[string]bool{}
	s.allowed = make([][]int, len(jobs))
	for k := range jobs {
		j := &jobs[k]
		at := fmt.Sprintf("job %q", j.ID)
		if j.Line > 0 {
			at = fmt.Sprintf("job %q (line %d)", j.ID, j.Line)
		}
		switch {
		case j.ID == "":
			return nil, greenq.Invalid("workload", "job %d has no id", k)
		case seen[j.ID]:
			return nil, greenq.Invalid("workload", "%s: id used twice", at)
		case j.Duration <= 0:
			return nil, greenq.Invalid("workload", "%s: duration must be > 0", at)
		case j.GPUs < 1:
			return nil, greenq.Invalid("workload", "%s: gpus must be ≥ 1", at)
		case j.Deadline.Before(j.Submit):
			return nil, greenq.Invalid("workload", "%s: deadline is before submit", at)
		}
		seen[j.ID] = true
		if j.PowerW <= 0 {
			j.PowerW = DefaultPowerW
		}
		if len(j.Regions) == 0 {
			for i := range s.regions {
				s.allowed[k] = append(s.allowed[k], i)
			}
			continue
		}
		for _, r := range j.Regions {
			i, ok := s.byName[r]
			if !ok {
				return nil, greenq.Invalid("workload", "%s: unknown region %s (known: %v)", at, r, names)
			}
			s.allowed[k] = append(s.allowed[k], i)
		}
	}
	return s, nil
}

// noisy returns s plus Gaussian noise of σ = f × the mean of its values,
// clipped at 0, seeded per region so a region's noise does not depend on
// which other regions are loaded.
func noisy(s forecast.Series, f float64, seed uint64) forecast.Series {
	var mean float64
	for _, p := range s.Points {
		mean += p.GCO2PerKWh
	}
	mean /= float64(len(s.Points))
	h := fnv.New64a()
	h.Write([]byte(s.Region))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	out := s
	out.Points = make([]forecast.Point, len(s.Points))
	for i, p := range s.Points {
		p.GCO2PerKWh = max(0, p.GCO2PerKWh+rng.NormFloat64()*f*mean)
		p.Kind = forecast.KindForecast
		out.Points[i] = p
	}
	return out
}

// order returns job indexes by submit time, then input order.
func (s *sim) order() []int {
	idx := make([]int, len(s.jobs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return s.jobs[idx[a]].Submit.Before(s.jobs[idx[b]].Submit) })
	return idx
}

// runNow starts every job at submit in its first allowed region, waiting
// for GPUs where the region's capacity is taken.
func (s *sim) runNow() [][]seg {
	out := make([][]seg, len(s.jobs))
	pools := s.newPools()
	for _, k := range s.order() {
		j := &s.jobs[k]
		r := s.allowed[k][0]
		out[k] = pools.place(r, j.GPUs, []seg{{region: r, start: ns(j.Submit), end: ns(j.Submit) + int64(j.Duration)}})
	}
	return out
}

// pools tracks committed runs per region for capacity.
type pools struct {
	s    *sim
	runs [][]run
}

type run struct {
	start, end int64
	gpus       int
}

func (s *sim) newPools() *pools { return &pools{s: s, runs: make([][]run, len(s.regions))} }

// prune forgets runs that ended by now.
func (p *pools) prune(now int64) {
	for r, rs := range p.runs {
		kept := rs[:0]
		for _, x := range rs {
			if x.end > now {
				kept = append(kept, x)
			}
		}
		p.runs[r] = kept
	}
}

// usageMax is the most GPUs in use in region r at any instant of [a, b).
func (p *pools) usageMax(r int, a, b int64) int {
	most := 0
	at := func(t int64) int {
		u := 0
		for _, x := range p.runs[r] {
			if x.start <= t && t < x.end {
				u += x.gpus
			}
		}
		return u
	}
	most = at(a)
	for _, x := range p.runs[r] {
		if x.start > a && x.start < b {
			most = max(most, at(x.start))
		}
	}
	return most
}

// place commits segs in region r, each delayed to the earliest time the
// region has gpus free for its whole length (a job larger than the region
// runs as planned: there is nothing to wait for).
func (p *pools) place(r, gpus int, segs []seg) []seg {
	c := p.s.regions[r].capacity
	out := make([]seg, 0, len(segs))
	var prevEnd int64 = math.MinInt64
	for _, sg := range segs {
		d := sg.end - sg.start
		start := max(sg.start, prevEnd)
		if c > 0 && gpus <= c {
			cands := []int64{start}
			for _, x := range p.runs[r] {
				if x.end > start {
					cands = append(cands, x.end)
				}
			}
			slices.Sort(cands)
			for _, t := range cands {
				if p.usageMax(r, t, t+d)+gpus <= c {
					start = t
					break
				}
			}
		}
		out = append(out, seg{region: r, start: start, end: start + d})
		if c > 0 && gpus <= c {
			p.runs[r] = append(p.runs[r], run{start, start + d, gpus})
		}
		prevEnd = start + d
	}
	return out
}

// busy lists region r's committed runs for the planner.
func (p *pools) busy(r int) []policy.Usage {
	var out []policy.Usage
	for _, x := range p.runs[r] {
		out = append(out, policy.Usage{Start: fromNS(x.start), End: fromNS(x.end), GPUs: x.gpus})
	}
	return out
}

// gJob is a job's state under the greenq policy.
type gJob struct {
	k        int
	cur      *policy.Assignment
	ver      int
	released bool
	running  bool // in a segment of several; planned again at its end
	// The segment it runs in now, for redecide: [segA, segB) as placed,
	// running since since (earlier where it went on from a re-decision),
	// and a count that outdates the events of a segment cut short.
	segA, segB, since int64
	segVer            int
}

type release struct {
	at, ver  int64
	k        int
	resume   bool // the end of a segment: plan what is left
	redecide bool // a tick inside a running segment (unless Config.runSegments)
}

type releaseHeap []release

func (h releaseHeap) Len() int { return len(h) }
func (h releaseHeap) Less(a, b int) bool {
	if h[a].at != h[b].at {
		return h[a].at < h[b].at
	}
	return h[a].k < h[b].k
}
func (h releaseHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *releaseHeap) Push(x any)   { *h = append(*h, x.(release)) }
func (h *releaseHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type greenStats struct {
	plannerSeconds float64
	rounds         int
	fallbacks      int
	violators      map[string]bool // see checkDominance
}

// runGreenQ replays the workload through policy.Plan on a virtual clock:
// each job is planned at submit, re-planned at every tick until released,
// and released at its first planned segment (at once when urgent). A job
// planned in several segments runs the first, pauses, and is planned again
// for what is left at its end (see startSegment).
func (s *sim) runGreenQ(ctx context.Context, progress func(done, total int)) ([][]seg, greenStats, error) {
	var st greenStats
	out := make([][]seg, len(s.jobs))
	s.ran = make([]int64, len(s.jobs))
	gs := make([]gJob, len(s.jobs))
	for k := range gs {
		gs[k].k = k
	}
	order := s.order()
	pools := s.newPools()
	var h releaseHeap
	var pending []*gJob
	tick := int64(s.cfg.Tick)
	ticking := tick > 0
	var nextTick int64 = math.MaxInt64
	done, every := 0, max(1, len(s.jobs)/200)
	si := 0
	for iter := 0; ; iter++ {
		if iter%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, st, fmt.Errorf("simulate: %w", err)
			}
		}
		t := int64(math.MaxInt64)
		if si < len(order) {
			t = ns(s.jobs[order[si]].Submit)
		}
		if len(h) > 0 && h[0].at < t {
			t = h[0].at
		}
		if ticking && len(pending) > 0 && nextTick < t {
			t = nextTick
		}
		if t == math.MaxInt64 {
			break
		}
		var fresh []*gJob
		for si < len(order) && ns(s.jobs[order[si]].Submit) == t {
			fresh = append(fresh, &gs[order[si]])
			si++
		}
		if ticking && len(pending) == 0 && len(fresh) > 0 {
			nextTick = (t/tick + 1) * tick
		}
		pending = append(pending, fresh...)
		switch {
		case ticking && t == nextTick && len(pending) > 0:
			s.planRound(t, pending, pending, pools, &h, &st)
			nextTick += tick
		case len(fresh) > 0:
			s.planRound(t, fresh, pending, pools, &h, &st)
		}
		for len(h) > 0 && h[0].at <= t {
			rel := heap.Pop(&h).(release)
			g := &gs[rel.k]
			if rel.redecide {
				switch {
				case rel.ver != int64(g.segVer) || t >= g.segB:
				case t-g.since < int64(s.cfg.Planner.WithDefaults().MinSegment):
					// Not cut shorter than a segment may be: decide again
					// at the next tick.
					if next := t + int64(s.cfg.Tick); next < g.segB {
						heap.Push(&h, release{at: next, k: g.k, redecide: true, ver: rel.ver})
					}
				default:
					if ticking && len(pending) == 0 {
						nextTick = (t/tick + 1) * tick
					}
					pending = append(pending, s.cutSegment(g, t, out, &done))
					s.planRound(t, []*gJob{g}, pending, pools, &h, &st)
				}
				continue
			}
			if rel.resume {
				if rel.ver != int64(g.segVer) {
					continue
				}
				g.running = false
				if ticking && len(pending) == 0 {
					nextTick = (t/tick + 1) * tick
				}
				pending = append(pending, g)
				s.planRound(t, []*gJob{g}, pending, pools, &h, &st)
				continue
			}
			if g.released || g.running || int64(g.ver) != rel.ver {
				continue
			}
			if s.startSegment(g, pools, &h, out) {
				continue
			}
			g.released = true
			left := int64(s.jobs[g.k].Duration) - s.ran[g.k]
			placed := pools.place(s.byName[g.cur.Region], s.jobs[g.k].GPUs, actualSegs(s.toSegs(g.cur), left))
			out[g.k] = joinSegs(out[g.k], placed)
			if len(placed) == 1 {
				s.watchSegment(g, placed[0], out[g.k][len(out[g.k])-1].start, &h)
			}
			done++
			if done%every == 0 {
				progress(done, len(s.jobs))
			}
		}
		kept := pending[:0]
		for _, g := range pending {
			if !g.released && !g.running {
				kept = append(kept, g)
			}
		}
		pending = kept
		pools.prune(t)
	}
	return out, st, nil
}

func (s *sim) toSegs(a *policy.Assignment) []seg {
	r := s.byName[a.Region]
	out := make([]seg, len(a.Segments))
	for i, w := range a.Segments {
		out[i] = seg{region: r, start: ns(w.Start), end: ns(w.End)}
	}
	return out
}

// planRound plans jobs at t with what is known at t. Other pending jobs'
// current plans count as busy capacity.
func (s *sim) planRound(t int64, jobs, pending []*gJob, pools *pools, h *releaseHeap, st *greenStats) {
	now := fromNS(t)
	horizon := t + int64(time.Hour)
	need := make([]bool, len(s.regions))
	in := policy.Input{Now: now, Config: s.cfg.Planner, Jobs: make([]policy.Job, len(jobs))}
	planned := map[int]bool{}
	for i, g := range jobs {
		j := &s.jobs[g.k]
		planned[g.k] = true
		horizon = max(horizon, ns(j.Deadline), t+int64(s.toPlan(g.k)))
		for _, r := range s.allowed[g.k] {
			need[r] = true
		}
		in.Jobs[i] = policy.Job{
			ID: j.ID, GPUs: j.GPUs, Duration: s.toPlan(g.k), PowerW: j.PowerW,
			Earliest: j.Submit, Deadline: j.Deadline, Regions: j.Regions,
			Interruptible: j.Interruptible, Current: g.cur,
		}
	}
	// Round the horizon up to whole hours so forecasts of nearby rounds
	// line up.
	horizon = t + ((horizon-t)+int64(time.Hour)-1)/int64(time.Hour)*int64(time.Hour)
	for r, rg := range s.regions {
		if !need[r] {
			continue
		}
		pr := policy.Region{Name: rg.name, PUE: rg.pue, Capacity: rg.capacity, Series: s.plannerSeries(rg, now, fromNS(horizon))}
		if rg.capacity > 0 {
			pr.Busy = pools.busy(r)
			for _, g := range pending {
				if !planned[g.k] && g.cur != nil && g.cur.Region == rg.name {
					for _, w := range g.cur.Segments {
						pr.Busy = append(pr.Busy, policy.Usage{Start: w.Start, End: w.End, GPUs: s.jobs[g.k].GPUs})
					}
				}
			}
		}
		in.Regions = append(in.Regions, pr)
	}
	t0 := s.cfg.Clock()
	res := planning.New(s.cfg.Planner).PlanInput(in)
	st.plannerSeconds += s.cfg.Clock().Sub(t0).Seconds()
	st.rounds++
	s.checkDominance(in, res, st)
	byID := make(map[string]*policy.Assignment, len(res.Assignments))
	for i := range res.Assignments {
		byID[res.Assignments[i].JobID] = &res.Assignments[i]
	}
	for _, g := range jobs {
		a, fallback := s.sanitize(g.k, byID[s.jobs[g.k].ID], t)
		if fallback {
			st.fallbacks++
		}
		g.cur = a
		g.ver++
		at := ns(policy.ReleaseAt(*a, now)) // the server's release rule
		heap.Push(h, release{at: at, ver: int64(g.ver), k: g.k})
		if s.cfg.OnDecision != nil {
			s.cfg.OnDecision(Decision{At: now, JobID: a.JobID, Region: a.Region, Segments: slices.Clone(a.Segments), Urgent: a.Urgent, Fallback: fallback})
		}
	}
}

// sanitize checks the planner's answer for job k at t and replaces an
// unusable one with a run at once in the first allowed region, so every
// placement is in an allowed region, not before now and of the job's
// length. An urgent job runs at once, contiguously.
func (s *sim) sanitize(k int, a *policy.Assignment, t int64) (*policy.Assignment, bool) {
	j := &s.jobs[k]
	now := fromNS(t)
	runNow := func(region string) *policy.Assignment {
		out := policy.Assignment{JobID: j.ID, Region: region, Urgent: true, Segments: []policy.Window{{Start: now, End: now.Add(s.toPlan(k))}}}
		if a != nil {
			out.ExpectedGCO2, out.Baseline, out.Reason = a.ExpectedGCO2, a.Baseline, a.Reason
		}
		return &out
	}
	first := s.regions[s.allowed[k][0]].name
	if a == nil {
		return runNow(first), true
	}
	r, ok := s.byName[a.Region]
	if !ok || !slices.Contains(s.allowed[k], r) {
		return runNow(first), true
	}
	if a.Urgent {
		return runNow(a.Region), false
	}
	var total time.Duration
	prev := now
	for _, w := range a.Segments {
		if w.Start.Before(prev) || !w.End.After(w.Start) {
			return runNow(first), true
		}
		total += w.End.Sub(w.Start)
		prev = w.End
	}
	if len(a.Segments) == 0 || total < s.toPlan(k) {
		return runNow(first), true
	}
	out := *a
	out.Segments = slices.Clone(a.Segments)
	// A planner that rounds segments up to whole slots overshoots; trim
	// the tail so the job runs exactly its duration.
	for extra := total - s.toPlan(k); extra > 0; {
		last := &out.Segments[len(out.Segments)-1]
		if d := last.End.Sub(last.Start); d > extra {
			last.End = last.End.Add(-extra)
			break
		} else {
			extra -= d
			out.Segments = out.Segments[:len(out.Segments)-1]
		}
	}
	return &out, false
}

// plannerSeries is what the planner may know of region rg at now, from now
// to end: the noisy actual series in noise mode, else the latest vintage
// issued by now, with the forecaster filling what it does not cover from
// the actual history up to now.
func (s *sim) plannerSeries(rg *simRegion, now, end time.Time) forecast.Series {
	if s.cfg.ForecastNoise > 0 {
		out := rg.noisy.Slice(now, end)
		out.IssuedAt = now
		out.Points = clipPoints(out.Points, now, end)
		return out
	}
	est := s.estimate(rg, now, end)
	v := latestVintage(rg.vintages, now)
	if v == nil {
		return est
	}
	vp := clipPoints(v.Points, now, end)
	if len(vp) == 0 {
		return est
	}
	out := est
	out.Source = v.Source
	out.IssuedAt = v.IssuedAt
	out.Points = clipPoints(est.Points, now, vp[0].Start)
	out.Points = append(out.Points, vp...)
	out.Points = append(out.Points, clipPoints(est.Points, vp[len(vp)-1].End, end)...)
	return out
}

// estimate returns the forecaster's view of [now, end) for rg, issued at
// the last tick at or before now (at now when ticks are off) from the
// history up to that instant.
func (s *sim) estimate(rg *simRegion, now, end time.Time) forecast.Series {
	origin := now
	if tick := s.cfg.Tick; tick > 0 {
		origin = fromNS(ns(now) / int64(tick) * int64(tick))
	}
	if rg.est.Points == nil || rg.estAt != ns(origin) || rg.est.End().Before(end) {
		pts := rg.actual.Points
		k := sort.Search(len(pts), func(i int) bool { return pts[i].End.After(origin) })
		j := 0
		if w := s.cfg.HistoryWindow; w > 0 {
			from := origin.Add(-w)
			j = sort.Search(k, func(i int) bool { return !pts[i].Start.Before(from) })
		}
		hist := rg.actual
		hist.Points = pts[j:k:k] // capacity cut: the forecaster cannot see or write past origin
		// Forecast a day beyond what is asked so later rounds of the same
		// tick reuse it.
		horizon := end.Sub(origin) + 24*time.Hour
		rg.est = s.cfg.Forecaster.Forecast(hist, origin, horizon)
		rg.est.Region, rg.est.Zone = rg.name, rg.actual.Zone
		if rg.est.Signal == "" {
			rg.est.Signal = rg.actual.Signal
		}
		if rg.est.Points == nil {
			rg.est.Points = []forecast.Point{}
		}
		rg.estAt = ns(origin)
	}
	out := rg.est
	out.Points = clipPoints(rg.est.Points, now, end)
	return out
}

// latestVintage returns the last vintage issued at or before now.
func latestVintage(vs []forecast.Series, now time.Time) *forecast.Series {
	i := sort.Search(len(vs), func(i int) bool { return vs[i].IssuedAt.After(now) })
	if i == 0 {
		return nil
	}
	return &vs[i-1]
}

// clipPoints returns copies of the points overlapping [a, b), cut to it.
func clipPoints(pts []forecast.Point, a, b time.Time) []forecast.Point {
	var out []forecast.Point
	if !b.After(a) {
		return nil
	}
	i := sort.Search(len(pts), func(i int) bool { return pts[i].End.After(a) })
	for ; i < len(pts) && pts[i].Start.Before(b); i++ {
		p := pts[i]
		if p.Start.Before(a) {
			p.Start = a
		}
		if p.End.After(b) {
			p.End = b
		}
		out = append(out, p)
	}
	return out
}

// runOracle places every job with perfect knowledge. Without capacity the
// placements are optimal and their score is exact. With capacity it
// returns the uncapacitated placements and a Lagrangian lower bound on any
// schedule that respects capacity and deadlines, improved by subgradient
// steps toward ub (a known schedule's total).
func (s *sim) runOracle(ctx context.Context, ub float64) ([][]seg, float64, error) {
	ojs := make([]oracleJob, len(s.jobs))
	for k := range s.jobs {
		j := &s.jobs[k]
		ojs[k] = oracleJob{
			submit: ns(j.Submit), deadline: ns(j.Deadline), dur: int64(j.Duration),
			gpus: float64(j.GPUs), kwhPerSecPerPUE: float64(j.GPUs) * j.PowerW / 1000 / 3600,
			regions: s.allowed[k], interruptible: j.Interruptible,
		}
	}
	solve := func(lams []penalty) ([][]seg, float64, error) {
		out := make([][]seg, len(ojs))
		var total float64
		for k := range ojs {
			if k%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, 0, fmt.Errorf("simulate: %w", err)
				}
			}
			var c float64
			out[k], c = solveOne(&ojs[k], s.regions, lams)
			total += c
		}
		return out, total, nil
	}
	base, total, err := solve(nil)
	if err != nil || !s.bounded {
		return base, total, err
	}
	lams := make([]penalty, len(s.regions))
	for r, rg := range s.regions {
		if rg.capacity > 0 {
			lams[r] = make(penalty, len(rg.step.v))
		}
	}
	bound, theta, stale := total, 1.0, 0
	segs := base
	for it := 0; it < s.cfg.BoundIterations; it++ {
		// Subgradient: GPU-seconds used minus available, per piece.
		grad := make([][]float64, len(s.regions))
		for r := range lams {
			if lams[r] != nil {
				grad[r] = make([]float64, len(lams[r]))
				f := s.regions[r].step
				for i := range grad[r] {
					grad[r][i] = -float64(s.regions[r].capacity) * float64(f.t[i+1]-f.t[i]) / 1e9
				}
			}
		}
		for k, ss := range segs {
			for _, sg := range ss {
				if grad[sg.region] == nil || !fits(&ojs[k], s.regions[sg.region]) {
					continue
				}
				f := s.regions[sg.region].step
				for i := f.piece(sg.start); i < len(f.v) && f.t[i] < sg.end; i++ {
					if lo, hi := max(sg.start, f.t[i]), min(sg.end, f.t[i+1]); hi > lo {
						grad[sg.region][i] += ojs[k].gpus * float64(hi-lo) / 1e9
					}
				}
			}
		}
		var norm float64
		for r := range grad {
			for i, g := range grad[r] {
				if lams[r][i] > 0 || g > 0 {
					norm += g * g
				}
			}
		}
		if norm == 0 || ub <= bound {
			break
		}
		step := theta * (ub - bound) / norm
		for r := range grad {
			for i, g := range grad[r] {
				lams[r][i] = max(0, lams[r][i]+step*g)
			}
		}
		var dual float64
		segs, dual, err = solve(lams)
		if err != nil {
			return nil, 0, err
		}
		for r, lam := range lams {
			if lam == nil {
				continue
			}
			f := s.regions[r].step
			c := float64(s.regions[r].capacity)
			for i, l := range lam {
				dual -= l * c * float64(f.t[i+1]-f.t[i]) / 1e9
			}
		}
		if dual > bound {
			bound, stale = dual, 0
		} else if stale++; stale >= 3 {
			theta, stale = theta/2, 0
		}
	}
	return base, bound, nil
}
