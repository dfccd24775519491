package backtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

// The harness the working-hours table and the tuning benchmarks share: the
// same cases (zone, year, shape, seed) and the same scoring, so a tuning
// line and a table row of one case are the same run.

// evalCase is one back-test: the actual series and a workload.
type evalCase struct {
	name   string
	carbon map[string]forecast.Series
	jobs   []Job
}

// shape is a workload shape of the tables.
type shape int

const (
	shapeUniform      shape = iota // slackJobs: submits uniform over the year, slack 6–48 h
	shapeWorkingHours              // WorkingHoursJobs
)

func (s shape) String() string {
	if s == shapeWorkingHours {
		return "wh"
	}
	return "uniform"
}

// benchCarbon loads the bench zones' series.
func benchCarbon(t testing.TB, data string) map[string]forecast.Series {
	t.Helper()
	all := map[string]forecast.Series{}
	for _, z := range benchZones {
		all[z] = loadCarbon(t, filepath.Join(data, "carbon", "em_"+z+".csv"), z)
	}
	return all
}

// evalCases builds, for each year, one case per bench zone of n jobs
// allowed only there, and one five-region case of nFive jobs, with the
// seeds of the published tables (zone i of year y: y·10 + i; five: y).
func evalCases(t testing.TB, data string, sh shape, years []int, n, nFive int) (single, five []evalCase) {
	t.Helper()
	ts := newTraceSampler(t, data)
	all := benchCarbon(t, data)
	draw := func(n int, from, to time.Time, regions []string, seed uint64) []Job {
		if sh == shapeWorkingHours {
			return ts.workingHours(t, n, from, to, regions, seed)
		}
		return ts.slackJobs(n, from, to, regions, seed)
	}
	for _, y := range years {
		from, to := time.Date(y, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 27, 0, 0, 0, 0, time.UTC)
		for i, z := range benchZones {
			single = append(single, evalCase{name: fmt.Sprintf("%s %d", z, y), carbon: map[string]forecast.Series{z: all[z]},
				jobs: draw(n, from, to, []string{z}, uint64(y*10+i))})
		}
		if nFive > 0 {
			five = append(five, evalCase{name: fmt.Sprintf("five regions %d", y), carbon: all, jobs: draw(nFive, from, to, benchZones, uint64(y))})
		}
	}
	return single, five
}

// jobScores are per-job gCO2e of each policy on the actual series.
type jobScores struct {
	jobs                    []Job
	now, green, ref, oracle []float64
	slack                   []time.Duration
}

// scoreJobs re-scores res's placements job by job (and now and the oracle,
// recomputed as Run does), so a table can split the savings by job kind.
func scoreJobs(t testing.TB, cfg Config, res Result) jobScores {
	t.Helper()
	s, err := load(cfg.WithDefaults())
	require.NoError(t, err)
	n := len(s.jobs)
	js := jobScores{jobs: s.jobs, now: make([]float64, n), green: make([]float64, n), ref: make([]float64, n), oracle: make([]float64, n), slack: make([]time.Duration, n)}
	idx := map[string]int{}
	for k, j := range s.jobs {
		idx[j.ID] = k
		js.slack[k] = j.Deadline.Sub(j.Submit) - j.Duration
	}
	kwhPerSec := func(k, r int) float64 {
		return float64(s.jobs[k].GPUs) * s.jobs[k].PowerW / 1000 / 3600 * s.regions[r].pue
	}
	add := func(dst []float64, ps []Placement) {
		for _, p := range ps {
			k, r := idx[p.JobID], s.byName[p.Region]
			dst[k] += kwhPerSec(k, r) * s.regions[r].step.integral(ns(p.Start), ns(p.End))
		}
	}
	add(js.green, res.Placements)
	add(js.ref, res.ReferencePlacements)
	for k, j := range s.jobs {
		r := s.allowed[k][0]
		js.now[k] = kwhPerSec(k, r) * s.regions[r].step.integral(ns(j.Submit), ns(j.Submit.Add(j.Duration)))
		oj := oracleJob{submit: ns(j.Submit), deadline: ns(j.Deadline), dur: int64(j.Duration), gpus: float64(j.GPUs),
			kwhPerSecPerPUE: float64(j.GPUs) * j.PowerW / 1000 / 3600, regions: s.allowed[k], interruptible: j.Interruptible}
		_, js.oracle[k] = solveOne(&oj, s.regions, nil)
	}
	return js
}

// fractions returns greenq's and the reference's share of the oracle's
// savings over the jobs keep selects, and how many it selects.
func (js jobScores) fractions(keep func(k int) bool) (green, ref float64, n int) {
	var now, g, r, o float64
	for k := range js.jobs {
		if !keep(k) {
			continue
		}
		n++
		now, g, r, o = now+js.now[k], g+js.green[k], r+js.ref[k], o+js.oracle[k]
	}
	if now-o <= 1e-9*math.Abs(now) {
		return 0, 0, n
	}
	return (now - g) / (now - o), (now - r) / (now - o), n
}

// misestimate returns jobs whose Estimate is the real run time × a
// lognormal error of log-σ sigma (median 1), at least a second.
func misestimate(jobs []Job, sigma float64, seed uint64) []Job {
	rng := rand.New(rand.NewPCG(seed, 17))
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		j.Estimate = max(time.Second, time.Duration(float64(j.Duration)*math.Exp(sigma*rng.NormFloat64())).Round(time.Second))
		out[i] = j
	}
	return out
}

// overestimate returns jobs whose Estimate is the real run time × e^(σ|Z|),
// Z standard normal: an upper bound, as a time limit is.
func overestimate(jobs []Job, sigma float64, seed uint64) []Job {
	rng := rand.New(rand.NewPCG(seed, 19))
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		j.Estimate = time.Duration(float64(j.Duration) * math.Exp(sigma*math.Abs(rng.NormFloat64()))).Round(time.Second)
		out[i] = j
	}
	return out
}

// caseScore is one case's run.
type caseScore struct {
	name string
	res  Result
	wall time.Duration
	js   jobScores
}

// evalScore is one configuration over a list of cases.
type evalScore struct {
	cases  []caseScore
	pooled jobScores
}

// evaluate runs every case under cfg (its Carbon and Jobs replaced by the
// case's) and scores it job by job.
func evaluate(t testing.TB, cases []evalCase, cfg Config) evalScore {
	t.Helper()
	var out evalScore
	for _, c := range cases {
		cc := cfg
		cc.Carbon, cc.Jobs = c.carbon, c.jobs
		r, d := runTimed(t, cc)
		js := scoreJobs(t, cc, r)
		g, rf, _ := js.fractions(func(int) bool { return true })
		require.InDelta(t, r.FractionOfOracleSavings, g, 1e-6, "per-job scores add up to Run's")
		require.InDelta(t, refFraction(r), rf, 1e-6, "per-job scores add up to Run's")
		out.cases = append(out.cases, caseScore{name: c.name, res: r, wall: d, js: js})
		out.pooled = out.pooled.merge(js)
	}
	return out
}

// merge returns js with o's jobs appended.
func (js jobScores) merge(o jobScores) jobScores {
	js.jobs = append(js.jobs, o.jobs...)
	js.now, js.green, js.ref, js.oracle = append(js.now, o.now...), append(js.green, o.green...), append(js.ref, o.ref...), append(js.oracle, o.oracle...)
	js.slack = append(js.slack, o.slack...)
	return js
}

// summary returns the mean and worst fraction of greenq and the reference,
// and the deadline misses and dominance violations of greenq.
func (e evalScore) summary() (mean, worst, refMean, refWorst float64, misses, refMisses, violations int) {
	worst, refWorst = math.Inf(1), math.Inf(1)
	for _, c := range e.cases {
		g, r := c.res.FractionOfOracleSavings, refFraction(c.res)
		mean, refMean = mean+g, refMean+r
		worst, refWorst = min(worst, g), min(refWorst, r)
		misses += c.res.Policies.GreenQ.DeadlineMisses
		refMisses += c.res.Policies.Reference.DeadlineMisses
		if v := c.res.Policies.GreenQ.DominanceViolations; v != nil {
			violations += *v
		}
	}
	if n := float64(len(e.cases)); n > 0 {
		mean, refMean = mean/n, refMean/n
	}
	return mean, worst, refMean, refWorst, misses, refMisses, violations
}

// line formats e for a tuning log: mean, worst, misses, violations, the
// reference beside them, each case (greenq/reference), and the pooled
// split by slack.
func (e evalScore) line(label string) string {
	m, w, rm, rw, miss, _, viol := e.summary()
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s mean=%.3f worst=%.3f misses=%d dominance=%d (reference %.3f / %.3f) |", label, m, w, miss, viol, rm, rw)
	for _, c := range e.cases {
		fmt.Fprintf(&b, " %s=%.3f/%.3f", c.name, c.res.FractionOfOracleSavings, refFraction(c.res))
	}
	b.WriteString("\n    ")
	splitRow(&b, "slack <8h|8-20h|20-40h|>40h|one piece|interruptible", e.pooled)
	return b.String()
}

var slackBuckets = []struct {
	name   string
	lo, hi time.Duration
}{{"< 8 h", 0, 8 * time.Hour}, {"8–20 h", 8 * time.Hour, 20 * time.Hour}, {"20–40 h", 20 * time.Hour, 40 * time.Hour}, {"> 40 h", 40 * time.Hour, 1 << 62}}

// splitRow writes one table row of js's fractions by slack and kind.
func splitRow(w *strings.Builder, label string, js jobScores) {
	fmt.Fprintf(w, "| %s |", label)
	cell := func(keep func(k int) bool) {
		g, r, n := js.fractions(keep)
		fmt.Fprintf(w, " %.3f / %.3f (%d) |", g, r, n)
	}
	for _, sb := range slackBuckets {
		cell(func(k int) bool { return js.slack[k] >= sb.lo && js.slack[k] < sb.hi })
	}
	cell(func(k int) bool { return !js.jobs[k].Interruptible })
	cell(func(k int) bool { return js.jobs[k].Interruptible })
	w.WriteString("\n")
}
