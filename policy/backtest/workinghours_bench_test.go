package backtest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// zoneLocations are the time zones of the bench zones' working hours.
var zoneLocations = map[string]string{
	"GB": "Europe/London", "DE-LU": "Europe/Berlin", "US-CAL-CISO": "America/Los_Angeles",
	"CA-ON": "America/Toronto", "AU-NSW": "Australia/Sydney",
}

func benchLocations(t *testing.T) map[string]*time.Location {
	t.Helper()
	out := map[string]*time.Location{}
	if os.Getenv("GREENQ_BENCH_WH_UTC") == "1" {
		return out // working hours in UTC everywhere, for comparison
	}
	for z, name := range zoneLocations {
		loc, err := time.LoadLocation(name)
		require.NoError(t, err)
		out[z] = loc
	}
	return out
}

// workingHours draws the working-hours shape over regions: run times from
// the Philly runtimes (60 s to 48 h, redrawn until they fit the deadline),
// GPUs from the Alibaba v2023 pods, submits on local workdays 09–17.
func (ts *traceSampler) workingHours(t *testing.T, n int, from, to time.Time, regions []string, seed uint64) []Job {
	t.Helper()
	durs := make([]time.Duration, len(ts.durations))
	for i, d := range ts.durations {
		durs[i] = time.Duration(d) * time.Second
	}
	jobs, err := WorkingHoursJobs(WorkingHours{N: n, From: from, To: to, Regions: regions, Locations: benchLocations(t), Durations: durs, GPUs: ts.gpus, Seed: seed})
	require.NoError(t, err)
	return jobs
}

// workingHoursRule documents the working-hours shape for the tables.
const workingHoursRule = "Working-hours shape (WorkingHoursJobs, seeded PCG): submits on Monday–Friday, uniform in 09:00–17:00 of the home zone's local time (GB Europe/London, DE-LU Europe/Berlin, US-CAL-CISO America/Los_Angeles, CA-ON America/Toronto, AU-NSW Australia/Sydney), workdays uniform over the period; deadline one of next workday 09:00 local, +8 h, +24 h, +72 h (uniform); run time drawn from the Philly runtimes between 60 s and 48 h, redrawn until it fits the deadline; GPUs drawn from the Alibaba v2023 pods with num_gpu ≥ 1; 30 % interruptible; per-GPU draw uniform in 250–700 W; PUE 1."

// jobScores are per-job gCO2e of each policy on the actual series.
type jobScores struct {
	jobs                    []Job
	now, green, ref, oracle []float64
	slack                   []time.Duration
}

// scoreJobs re-scores res's placements job by job (and now and the oracle,
// recomputed as Run does), so a table can split the savings by job kind.
func scoreJobs(t *testing.T, cfg Config, res Result) jobScores {
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

var slackBuckets = []struct {
	name   string
	lo, hi time.Duration
}{{"< 8 h", 0, 8 * time.Hour}, {"8–20 h", 8 * time.Hour, 20 * time.Hour}, {"20–40 h", 20 * time.Hour, 40 * time.Hour}, {"> 40 h", 40 * time.Hour, 1 << 62}}

// whYears are the years the working-hours table validates on: 2023 unless
// GREENQ_BENCH_WH_YEARS names others (2021,2022 are the tuning years).
func whYears(t *testing.T) []int {
	t.Helper()
	s := os.Getenv("GREENQ_BENCH_WH_YEARS")
	if s == "" {
		return []int{2023}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		y, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(t, err)
		out = append(out, y)
	}
	return out
}

// TestBenchWorkingHours: the working-hours shape, one zone at a time (time
// shifting only) and the five zones together, out of sample (2023), with
// greenq, the reference policy and the oracle; then the same split by
// slack and by interruptibility. GREENQ_BENCH_WRITE_WORKLOADS=DIR also
// writes each workload as a CSV for `greenq simulate`.
func TestBenchWorkingHours(t *testing.T) {
	data := benchSetup(t)
	ts := newTraceSampler(t, data)
	all := map[string]forecast.Series{}
	for _, z := range benchZones {
		all[z] = loadCarbon(t, filepath.Join(data, "carbon", "em_"+z+".csv"), z)
	}
	writeDir := os.Getenv("GREENQ_BENCH_WRITE_WORKLOADS")
	var b, split strings.Builder
	b.WriteString("### Working-hours workload: greenq against the reference policy and the oracle\n\n")
	b.WriteString("| case | jobs | now tCO2e | oracle saves | greenq saves | greenq: fraction | misses | reference: fraction | misses | greenq − reference | wall (whole run) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	split.WriteString("By slack (deadline − submit − run time) and kind, fraction of the oracle's savings, greenq / reference (jobs):\n\n| case | " +
		"< 8 h | 8–20 h | 20–40 h | > 40 h | run in one piece | interruptible |\n|---|---|---|---|---|---|---|\n")
	for _, y := range whYears(t) {
		from, to := time.Date(y, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 27, 0, 0, 0, 0, time.UTC)
		var sum, sumRef float64
		worst, worstRef := math.Inf(1), math.Inf(1)
		var pooled []jobScores
		row := func(label string, cfg Config) jobScores {
			r, d := runTimed(t, cfg)
			p := r.Policies
			fmt.Fprintf(&b, "| %s | %d | %.1f | %s | %s | %.3f | %d | %.3f | %d | %+.3f | %s |\n", label, r.Jobs, p.Now.GCO2/1e6, pct(savings(r, p.Oracle)), pct(savings(r, p.GreenQ)),
				r.FractionOfOracleSavings, p.GreenQ.DeadlineMisses, refFraction(r), p.Reference.DeadlineMisses, r.FractionOfOracleSavings-refFraction(r), d.Round(time.Millisecond))
			if writeDir != "" {
				require.NoError(t, os.MkdirAll(writeDir, 0o755))
				fh, err := os.Create(filepath.Join(writeDir, strings.ReplaceAll(label, " ", "_")+".csv"))
				require.NoError(t, err)
				require.NoError(t, WriteWorkload(fh, cfg.Jobs))
				require.NoError(t, fh.Close())
			}
			js := scoreJobs(t, cfg, r)
			g, rf, _ := js.fractions(func(int) bool { return true })
			require.InDelta(t, r.FractionOfOracleSavings, g, 1e-6, "per-job scores add up to Run's")
			require.InDelta(t, refFraction(r), rf, 1e-6, "per-job scores add up to Run's")
			splitRow(&split, label, js)
			return js
		}
		for i, z := range benchZones {
			cfg := Config{Carbon: map[string]forecast.Series{z: all[z]}, Jobs: ts.workingHours(t, 2000, from, to, []string{z}, uint64(y*10+i))}
			js := row(fmt.Sprintf("%s %d", z, y), cfg)
			g, r, _ := js.fractions(func(int) bool { return true })
			sum, sumRef = sum+g, sumRef+r
			worst, worstRef = min(worst, g), min(worstRef, r)
			pooled = append(pooled, js)
		}
		n := float64(len(benchZones))
		fmt.Fprintf(&b, "| mean of %d zones, %d | | | | | **%.3f** | | %.3f | | %+.3f | |\n", len(benchZones), y, sum/n, sumRef/n, (sum-sumRef)/n)
		fmt.Fprintf(&b, "| worst zone, %d | | | | | %.3f | | %.3f | | | |\n", y, worst, worstRef)
		var merged jobScores
		for _, js := range pooled {
			merged.jobs = append(merged.jobs, js.jobs...)
			merged.now, merged.green, merged.ref, merged.oracle = append(merged.now, js.now...), append(merged.green, js.green...), append(merged.ref, js.ref...), append(merged.oracle, js.oracle...)
			merged.slack = append(merged.slack, js.slack...)
		}
		splitRow(&split, fmt.Sprintf("one zone, %d (five zones' jobs pooled)", y), merged)
		row(fmt.Sprintf("five regions %d", y), Config{Carbon: all, Jobs: ts.workingHours(t, 5000, from, to, benchZones, uint64(y))})
	}
	fmt.Fprintf(&b, "\nWorkload per zone: 2000 jobs, every job allowed only in that zone; five regions: 5000 jobs, each allowed in all five zones in a random order per job whose first is its home region (where now runs it, and whose local working hours it keeps). Submit days 01-08 → 12-26. %s greenq: the back-test defaults (own forecaster, re-plan every %s). %s Forecasters tuned on 2021–2022; 2023 is out of sample.\n\n%s",
		workingHoursRule, Config{}.WithDefaults().Tick, referenceRule, split.String())
	benchWrite(t, "working_hours", b.String())
}

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

// refForecaster is the reference policy's forecast (7-day hourly profile
// plus the last deviation, fading linearly over 12 h) as a Forecaster, so
// the production planner can be run on it: it splits the gap between greenq
// and the reference into forecast and decision rule.
type refForecaster struct{}

func (refForecaster) Forecast(history forecast.Series, from time.Time, horizon time.Duration) forecast.Series {
	out := forecast.Series{Region: history.Region, Zone: history.Zone, Source: "reference", Signal: history.Signal, IssuedAt: from}
	if len(history.Points) == 0 {
		return out
	}
	f := newRefHours(history).forecastAt(ns(from))
	for h := floorHour(ns(from)); h < ns(from.Add(horizon)); h += hourNS {
		a := max(h, ns(from))
		out.Points = append(out.Points, forecast.Point{Start: fromNS(a), End: fromNS(h + hourNS), GCO2PerKWh: f.at(h), Kind: forecast.KindEstimate})
	}
	return out
}

// TestTuneWorkingHours splits the working-hours gap between greenq and the
// reference: the production planner on the reference's forecast, and
// greenq's forecaster variants, one zone at a time. It runs only with
// GREENQ_BENCH_TUNE=1; years from GREENQ_TUNE_YEARS (default 2021,2022).
func TestTuneWorkingHours(t *testing.T) {
	if os.Getenv("GREENQ_BENCH_TUNE") != "1" {
		t.Skip("set GREENQ_BENCH_TUNE=1 to tune the back-test")
	}
	t.Setenv("GREENQ_BENCH", "1")
	data := benchSetup(t)
	years := []int{2021, 2022}
	if s := os.Getenv("GREENQ_TUNE_YEARS"); s != "" {
		years = nil
		for _, f := range strings.Split(s, ",") {
			y, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(t, err)
			years = append(years, y)
		}
	}
	single, _ := tuneWorkingHours(t, data, years, 2000)
	p7 := forecast.DefaultParams
	p7.Days = 7
	for _, v := range []struct {
		name string
		cfg  Config
	}{
		{"greenq (defaults)", Config{}},
		{"greenq planner, reference forecast", Config{Forecaster: refForecaster{}}},
		{"greenq, profile days=7", Config{Forecaster: forecast.Forecaster{Params: &p7}}},
		{"greenq, safety margin 1s", Config{Planner: policy.Config{SafetyMargin: time.Second}}},
		{"greenq, safety margin 5m", Config{Planner: policy.Config{SafetyMargin: 5 * time.Minute}}},
		{"greenq planner 1s margin, ref forecast", Config{Forecaster: refForecaster{}, Planner: policy.Config{SafetyMargin: time.Second}}},
	} {
		if only := os.Getenv("GREENQ_TUNE_ONLY"); only != "" && !strings.Contains(v.name, only) {
			continue
		}
		var g, r float64
		misses := 0
		var line strings.Builder
		var pooled jobScores
		for _, c := range single {
			cfg := v.cfg
			cfg.Carbon, cfg.Jobs = c.carbon, c.jobs
			res, _ := runTimed(t, cfg)
			g += res.FractionOfOracleSavings
			r += refFraction(res)
			misses += res.Policies.GreenQ.DeadlineMisses
			fmt.Fprintf(&line, " %s=%.3f", c.name, res.FractionOfOracleSavings)
			js := scoreJobs(t, cfg, res)
			pooled.jobs = append(pooled.jobs, js.jobs...)
			pooled.now, pooled.green, pooled.ref, pooled.oracle = append(pooled.now, js.now...), append(pooled.green, js.green...), append(pooled.ref, js.ref...), append(pooled.oracle, js.oracle...)
			pooled.slack = append(pooled.slack, js.slack...)
		}
		n := float64(len(single))
		var split strings.Builder
		splitRow(&split, "pooled", pooled)
		fmt.Printf("%-40s greenq mean=%.3f (misses %d) reference mean=%.3f |%s\n    by slack <8h|8-20h|20-40h|>40h|one piece|interruptible (greenq / reference): %s", v.name, g/n, misses, r/n, line.String(), split.String())
	}
}
