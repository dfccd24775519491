package backtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

type tuneCase struct {
	name   string
	carbon map[string]forecast.Series
	jobs   []Job
}

// tuneCases builds single-region cases per zone and a five-region case for
// each year.
func tuneCases(t *testing.T, data string, years []int, n int) (single, five []tuneCase) {
	t.Helper()
	ts := newTraceSampler(t, data)
	all := map[string]forecast.Series{}
	for _, z := range benchZones {
		all[z] = loadCarbon(t, filepath.Join(data, "carbon", "em_"+z+".csv"), z)
	}
	for _, y := range years {
		from, to := time.Date(y, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 27, 0, 0, 0, 0, time.UTC)
		for i, z := range benchZones {
			single = append(single, tuneCase{name: fmt.Sprintf("%s %d", z, y), carbon: map[string]forecast.Series{z: all[z]},
				jobs: ts.slackJobs(n, from, to, []string{z}, uint64(y*10+i))})
		}
		five = append(five, tuneCase{name: fmt.Sprintf("five %d", y), carbon: all, jobs: ts.slackJobs(n, from, to, benchZones, uint64(y))})
	}
	return single, five
}

// tuneWorkingHours builds the same cases with the working-hours shape.
func tuneWorkingHours(t *testing.T, data string, years []int, n int) (single, five []tuneCase) {
	t.Helper()
	ts := newTraceSampler(t, data)
	all := map[string]forecast.Series{}
	for _, z := range benchZones {
		all[z] = loadCarbon(t, filepath.Join(data, "carbon", "em_"+z+".csv"), z)
	}
	for _, y := range years {
		from, to := time.Date(y, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 27, 0, 0, 0, 0, time.UTC)
		for i, z := range benchZones {
			single = append(single, tuneCase{name: fmt.Sprintf("wh %s %d", z, y), carbon: map[string]forecast.Series{z: all[z]},
				jobs: ts.workingHours(t, n, from, to, []string{z}, uint64(y*10+i))})
		}
		five = append(five, tuneCase{name: fmt.Sprintf("wh five %d", y), carbon: all, jobs: ts.workingHours(t, n, from, to, benchZones, uint64(y))})
	}
	return single, five
}

// TestTuneBacktest compares back-test settings (tick, hysteresis,
// forecaster) on 2021–2022 (tuning) or the years in GREENQ_TUNE_YEARS, on
// both workload shapes (uniform slack and working hours), each line with
// the reference policy's mean beside greenq's.
// It runs only with GREENQ_BENCH_TUNE=1.
func TestTuneBacktest(t *testing.T) {
	if os.Getenv("GREENQ_BENCH_TUNE") != "1" {
		t.Skip("set GREENQ_BENCH_TUNE=1 to tune the back-test")
	}
	t.Setenv("GREENQ_BENCH", "1")
	data := benchSetup(t)
	years := []int{2021, 2022}
	if s := os.Getenv("GREENQ_TUNE_YEARS"); s != "" {
		years = nil
		for _, f := range strings.Split(s, ",") {
			var y int
			fmt.Sscan(f, &y)
			years = append(years, y)
		}
	}
	single, five := tuneCases(t, data, years, 1500)
	whSingle, whFive := tuneWorkingHours(t, data, years, 1500)
	var lwa []tuneCase
	if os.Getenv("GREENQ_TUNE_LWA") == "1" {
		for _, reg := range lwaRegions {
			ser := loadCarbon(t, filepath.Join(data, "carbon", "lwa_"+reg.name+"_2020.csv"), reg.name)
			for _, intr := range []bool{false, true} {
				lwa = append(lwa, tuneCase{name: fmt.Sprintf("LWA %s i=%v", reg.name, intr), carbon: map[string]forecast.Series{reg.name: ser}, jobs: lwaJobs(3387, intr)})
			}
		}
	}
	only := os.Getenv("GREENQ_TUNE_ONLY")
	for _, v := range tuneVariants() {
		if only != "" && !strings.Contains(v.name, only) {
			continue
		}
		t0 := time.Now()
		var line strings.Builder
		score := func(label string, cs []tuneCase) {
			var sum, ref float64
			misses := 0
			for _, c := range cs {
				cfg := v.cfg
				cfg.Carbon, cfg.Jobs = c.carbon, c.jobs
				r, _ := runTimed(t, cfg)
				sum += r.FractionOfOracleSavings
				ref += refFraction(r)
				misses += r.Policies.GreenQ.DeadlineMisses
				fmt.Fprintf(&line, " %s=%.3f", c.name, r.FractionOfOracleSavings)
			}
			if len(cs) > 0 {
				fmt.Printf("%-28s %s mean=%.3f misses=%d (reference %.3f)\n", v.name, label, sum/float64(len(cs)), misses, ref/float64(len(cs)))
			}
		}
		score("single", single)
		score("five  ", five)
		score("wh-single", whSingle)
		score("wh-five  ", whFive)
		score("lwa   ", lwa)
		fmt.Printf("   %s [%s]\n", line.String(), time.Since(t0).Round(time.Millisecond))
	}
}

type tuneVariant struct {
	name string
	cfg  Config
}

func tuneVariants() []tuneVariant {
	naive := forecast.Forecaster{Method: forecast.MethodSeasonalDay}
	profile := forecast.Forecaster{Method: forecast.MethodProfile}
	regression := forecast.Forecaster{Method: forecast.MethodRegression}
	vs := []tuneVariant{
		{"naive-once", Config{Tick: -1, Forecaster: naive}},
		{"perfect-forecast", Config{ForecastNoise: 1e-9}},
		{"profile hys=0.05", Config{Forecaster: profile, Planner: policy.Config{Hysteresis: 0.05}}},
	}
	vs = append(vs,
		tuneVariant{"profile hys=0.001", Config{Forecaster: profile, Planner: policy.Config{Hysteresis: 0.001}}},
		tuneVariant{"profile hys=1e-09 tick=15m", Config{Tick: 15 * time.Minute, Forecaster: profile, Planner: policy.Config{Hysteresis: 1e-9}}})
	for _, h := range []float64{0.01, 1e-9} {
		vs = append(vs,
			tuneVariant{fmt.Sprintf("profile hys=%g", h), Config{Forecaster: profile, Planner: policy.Config{Hysteresis: h}}},
			tuneVariant{fmt.Sprintf("regression hys=%g", h), Config{Forecaster: regression, Planner: policy.Config{Hysteresis: h}}})
	}
	// Forecaster parameters as the back-test scores them (TestTuneForecaster
	// picked them on forecast error). On 2021–2022 they all lay within
	// ±0.01 of the defaults' 0.744 (single) and 0.986 (five), about the
	// workload sample's own noise, and none beat the defaults on 2023.
	// Pulling far-ahead estimates toward their mean (lead-dependent
	// shrinkage in the planner) or pushing them away both lost, the more
	// the further (shrink to 0.70, stretch to 0.70 at a 12–24 h scale), so
	// neither is in the planner. A median profile, or one of the target's
	// day type (weekday or weekend) only, did not help either (2023 median:
	// 0.762 against 0.781).
	//
	// Valuing the option to wait did not help either: a start before the
	// next re-plan was deferred when the expected best later start, with
	// Gaussian error growing with lead (σ = ρ·(1 − e^(−lead/6h)) of the
	// run's emissions, independent per 3–24 h group, backward induction),
	// beat it. On 2021–2022 single-region means were 0.745, 0.733, 0.714
	// and 0.666 for ρ = 0.1, 0.2, 0.3, 0.5 at 3 h groups, and 0.740–0.749
	// at 12–24 h, against 0.744 without. TestBenchForecastHorizon shows
	// why: the gap is information beyond 12 h of lead, which no decision
	// rule over the same forecast recovers.
	vs = append(vs, tuneVariant{"fc base", Config{Forecaster: profile}})
	dp := forecast.DefaultParams
	for _, m := range []func(p *forecast.Params) string{
		func(p *forecast.Params) string { p.Days = 7; return "days=7" },
		func(p *forecast.Params) string { p.Days = 21; return "days=21" },
		func(p *forecast.Params) string { p.Days = 28; return "days=28" },
		func(p *forecast.Params) string { p.WeekWeight = 0.3; return "week=0.3" },
		func(p *forecast.Params) string { p.Decay = 0.9; return "decay=0.9" },
		func(p *forecast.Params) string { p.Decay = 0.98; return "decay=0.98" },
		func(p *forecast.Params) string { p.Floor = 0; return "floor=0" },
		func(p *forecast.Params) string { p.Floor = 0.5; return "floor=0.5" },
		func(p *forecast.Params) string { p.LevelHours = 3; return "level=3" },
	} {
		p := dp
		name := m(&p)
		vs = append(vs, tuneVariant{"fc " + name, Config{Forecaster: forecast.Forecaster{Method: forecast.MethodProfile, Params: &p}}})
	}
	return vs
}

// TestTuneBuckets splits the single-region gap by job duration.
func TestTuneBuckets(t *testing.T) {
	if os.Getenv("GREENQ_BENCH_TUNE") != "1" {
		t.Skip("set GREENQ_BENCH_TUNE=1 to tune the back-test")
	}
	t.Setenv("GREENQ_BENCH", "1")
	data := benchSetup(t)
	single, _ := tuneCases(t, data, []int{2021, 2022}, 1500)
	bounds := []time.Duration{0, time.Hour, 6 * time.Hour, 24 * time.Hour, 1000 * time.Hour}
	for _, c := range single {
		var line strings.Builder
		for b := 0; b+1 < len(bounds); b++ {
			var jobs []Job
			for _, j := range c.jobs {
				if j.Duration >= bounds[b] && j.Duration < bounds[b+1] {
					jobs = append(jobs, j)
				}
			}
			cfg := Config{Carbon: c.carbon, Jobs: jobs}
			cfg.Planner.Hysteresis = 1e-9
			r, _ := runTimed(t, cfg)
			fmt.Fprintf(&line, " <%s: n=%d now=%.0f gap=%.0f frac=%.3f |", bounds[b+1], len(jobs), r.Policies.Now.GCO2/1e3, (r.Policies.GreenQ.GCO2-r.Policies.Oracle.GCO2)/1e3, r.FractionOfOracleSavings)
		}
		fmt.Printf("%-16s%s\n", c.name, line.String())
	}
}
