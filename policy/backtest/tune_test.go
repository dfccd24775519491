package backtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// The tuning reports print one line per variant and shape: the mean and
// worst fraction of the oracle's savings over the cases, deadline misses,
// dominance violations, the reference beside them, and the pooled split by
// slack. Years come from GREENQ_TUNE_YEARS (default 2021,2022, the tuning
// years; 2023 validates), GREENQ_TUNE_ONLY keeps the variants whose name
// contains it, GREENQ_TUNE_N sets the jobs per zone (default 2000) and
// GREENQ_TUNE_FIVE=1 adds the five-region cases and GREENQ_TUNE_ZONE
// keeps the single-region cases whose name contains it.

func tuneYears(t testing.TB) []int {
	t.Helper()
	return envYears(t, "GREENQ_TUNE_YEARS", []int{2021, 2022})
}

// envYears parses the comma-separated years in env var name, else def.
func envYears(t testing.TB, name string, def []int) []int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		y, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, y)
	}
	return out
}

type tuneVariant struct {
	name string
	cfg  Config
	// jobs, when set, rewrites each case's workload (misestimates).
	jobs func([]Job) []Job
}

// tuneRun scores each variant on both shapes and prints its lines.
func tuneRun(t testing.TB, variants []tuneVariant) {
	t.Helper()
	data := benchSetup(t)
	years := tuneYears(t)
	n := 2000
	if s := os.Getenv("GREENQ_TUNE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	nFive := 0
	if os.Getenv("GREENQ_TUNE_FIVE") == "1" {
		nFive = 5 * n / 2
	}
	type shaped struct {
		sh          shape
		single, fiv []evalCase
	}
	var shapes []shaped
	for _, sh := range []shape{shapeWorkingHours, shapeUniform} {
		if only := os.Getenv("GREENQ_TUNE_SHAPE"); only != "" && only != sh.String() {
			continue
		}
		s, f := evalCases(t, data, sh, years, n, nFive)
		if zone := os.Getenv("GREENQ_TUNE_ZONE"); zone != "" {
			s = keepCases(s, zone)
		}
		shapes = append(shapes, shaped{sh, s, f})
	}
	only := os.Getenv("GREENQ_TUNE_ONLY")
	for _, v := range variants {
		if only != "" && !strings.Contains(v.name, only) {
			continue
		}
		t0 := time.Now()
		fmt.Printf("%s [years %v]\n", v.name, years)
		for _, s := range shapes {
			for _, cs := range []struct {
				label string
				cases []evalCase
			}{{s.sh.String() + " one", s.single}, {s.sh.String() + " five", s.fiv}} {
				if len(cs.cases) == 0 {
					continue
				}
				cases := cs.cases
				if v.jobs != nil {
					cases = make([]evalCase, len(cs.cases))
					for i, c := range cs.cases {
						c.jobs = v.jobs(c.jobs)
						cases[i] = c
					}
				}
				fmt.Print("  " + evaluate(t, cases, v.cfg).line(cs.label))
			}
		}
		fmt.Printf("  [%s]\n", time.Since(t0).Round(time.Millisecond))
	}
}

// keepCases returns the cases whose name contains zone.
func keepCases(cases []evalCase, zone string) []evalCase {
	var out []evalCase
	for _, c := range cases {
		if strings.Contains(c.name, zone) {
			out = append(out, c)
		}
	}
	return out
}

// BenchmarkTuneWorkingHours scores planner variants (safety margin,
// release rule, forecast, misestimated durations) on both shapes.
//
// What it found, one zone at a time, 2000 jobs per zone, fraction of the
// oracle's savings, mean (worst) of the five zones, zero misses unless a
// count is given: tuned on 2021–2022, validated on 2023. "σ=0.3 misses":
// deadline misses over the 2 × 10 000 jobs of 2021–2022 (working hours /
// uniform) when every estimate is the real run time × a lognormal error
// of log-σ 0.3 (misestimate); with estimates that only run long
// (overestimate, a time limit) no margin misses.
//
//	| variant                                  | wh 21–22      | uniform 21–22 | σ=0.3 misses | wh 2023       | uniform 2023  |
//	|------------------------------------------|---------------|---------------|--------------|---------------|---------------|
//	| margin max(2 slots, 10 %) (old default)  | 0.703 (0.575) | 0.752 (0.629) | 134 / 184    | 0.748 (0.641) | 0.791 (0.669) |
//	| margin max(2 slots, 5 %)                 | 0.710 (0.578) | 0.758 (0.631) | 145 / 196    |               |               |
//	| margin max(2 slots, 2 %)                 | 0.716 (0.579) | 0.763 (0.640) | 149 / 204    |               |               |
//	| margin 2 slots (30 m)                    | 0.717 (0.579) | 0.764 (0.641) | 149 / 204    |               |               |
//	| margin max(5 m, 10 %)                    | 0.707 (0.579) | 0.754 (0.631) | 227 / 267    |               |               |
//	| margin 30 m / 15 m / 10 m, fixed         | 0.716 / 0.723 / 0.725 | 0.763 / 0.768 / 0.770 | | | |
//	| margin 5 m / 2 m / 1 m / 1 s, fixed      | 0.726 / 0.727 / 0.728 / 0.729 | 0.771 / 0.772 / 0.772 / 0.772 | 270 / 323 (5 m) |            |               |
//	| + latest start mid-slot, 2 slots         | 0.720 (0.581) | 0.765 (0.644) | 165 / 226    | 0.764 (0.681) |               |
//	| + latest start mid-slot, 5 m             | 0.729 (0.590) | 0.772 (0.651) | 370 / 423    | 0.776 (0.683) | 0.809 (0.674) |
//	| + a paused job re-planned, 2 slots       | 0.724 (0.585) | 0.770 (0.651) |              |               |               |
//	| + re-planned, min(2 slots, max(5 m, 30 %)) | 0.726 (0.587) | 0.771 (0.652) | 240 / 292  |               |               |
//	| + re-planned, max(2 slots, 10 %)         | 0.717 (0.582) | 0.765 (0.640) |              |               |               |
//	| + re-planned, max(min(2 slots, 5 m), 10 %) | 0.720 (0.586) | 0.767 (0.642) |            |               |               |
//	| + re-planned, max(min(2 slots, 5 m), 5 %)  | 0.726 (0.591) | 0.773 (0.653) |            |               |               |
//	| + re-planned, min(2 slots, 5 m): default | 0.733 (0.593) | 0.777 (0.656) | 374 / 422    | 0.783 (0.691) | 0.810 (0.676) |
//	| default, hysteresis 1e-9 / 0.003 / 0.01  | 0.734 / 0.737 / 0.734 | 0.775 / 0.779 / 0.780 | |  | |
//	| default, hysteresis 0.003                | 0.737 (0.593) | 0.779 (0.675) |              | 0.782 (0.690) | 0.809 (0.679) |
//	| lead penalty ×(1 + 0.01·(1 − e^(−lead/6 h))) | 0.696 (0.555), 24 dominance violations | | |   |               |
//	| re-decide running interruptible jobs: default | 0.735 (0.593) | 0.778 (0.657) |  | 0.784 (0.692) | 0.811 (0.677) |
//	| run each segment to its end (before)     | 0.734 (0.593) | 0.777 (0.656) |              | 0.783 (0.691) | 0.810 (0.676) |
//	| re-decide, min segment 30 m / 2 h        | 0.736 / 0.730 (0.592 / 0.585) | 0.778 / 0.774 (0.659 / 0.652) | | |     |
//
// With a smaller error (log-σ 0.1) the misses over the same jobs were 44 /
// 62 under the old default, and with re-planning and the latest start 64 /
// 103 for max(2 slots, 10 %), 147 / 187 for max(min(2 slots, 5 m), 10 %),
// 210 / 237 for its 5 % and 249 / 283 for the default (2023: 174 / 217 at
// log-σ 0.3). A job whose estimate runs short by more than the margin
// misses whatever the planner does; the reference policy keeps no margin.
//
// The 10 % of the run time in the old margin cost 0.014–0.02 and spared
// few misestimated jobs (134 against 149 misses without it): errors of
// 30 % pass a 10 % margin anyway. The 30-minute floor is what spares short
// jobs (149 against 270 at 5 minutes); the default keeps 5 minutes, which
// covers release latency, and SafetyMargin is the knob where estimates run
// short. Starting at an unaligned latest start (the deadline less margin
// and run time), as the reference does, and re-planning what is left of a
// paused interruptible job at the end of each segment, as the server does
// (before, the back-test committed every segment at the first one's
// start), both help. A penalty on later starts, growing with lead as
// forecast error does, lost (0.696 against 0.703 with the old margin, and
// 0.479 in the < 8 h slack bucket) and is not in the planner. A
// hysteresis of 0.003 won a little on 2021–2022 and nothing on 2023, so
// the default stays 0.001. "greenq planner, reference forecast" runs the
// production planner on the reference policy's forecast.
//
// Re-deciding a running interruptible job (the default; Config.runSegments
// turns it off) re-plans it at each hourly tick once it has run
// MinSegment of its segment, and pauses it when the plan no longer goes on
// at once, as the reference policy's hourly rule does and as the server's
// planner does (planning.Planner.Pauses). It won a little on both shapes
// and all three years (0.734 → 0.735, 0.777 → 0.778 on 2021–2022, 0.783 →
// 0.784, 0.810 → 0.811 on 2023, DE-LU 2023 0.691 → 0.692; interruptible
// jobs alone 0.803 → 0.808 on 2023 working hours) with zero misses and
// violations, and more in Let's Wait Awhile scenario II (interruptible,
// own forecaster, savings vs at submit): FR 3.64 % → 3.94 % (reference
// 4.00 %), GB 6.90 % → 7.14 % (6.90 %), DE 5.59 % → 5.82 % (5.45 %). A
// shorter minimum segment (30 m, the default being 4 slots = 1 h) gained
// 0.001 on working hours and nothing on the uniform shape, with a worse
// worst zone, before counting what each extra pause costs a job
// (checkpoint, restart), which the back-test does not: the default stays.
// A first measurement (0.740, FR 4.23 %) was inflated by a bug: a job cut
// while nothing else was pending left the hourly tick behind, so the
// simulated clock went back to it.
func BenchmarkTuneWorkingHours(b *testing.B) { tuneRun(b, plannerVariants()) }

func plannerVariants() []tuneVariant {
	vs := []tuneVariant{
		{name: "greenq (defaults)"},
		{name: "greenq planner, reference forecast", cfg: Config{Forecaster: refForecaster{}}},
		{name: "run each segment to its end (no re-deciding)", cfg: Config{runSegments: true}},
	}
	for _, m := range []time.Duration{time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute} {
		vs = append(vs, tuneVariant{name: fmt.Sprintf("margin %s", m), cfg: Config{Planner: policy.Config{SafetyMargin: m}}})
	}
	for _, m := range []time.Duration{30 * time.Minute, 2 * time.Hour} {
		vs = append(vs, tuneVariant{name: fmt.Sprintf("min segment %s", m), cfg: Config{Planner: policy.Config{MinSegment: m}}})
	}
	for _, h := range []float64{1e-9, 0.003, 0.01} {
		vs = append(vs, tuneVariant{name: fmt.Sprintf("hysteresis %g", h), cfg: Config{Planner: policy.Config{Hysteresis: h}}})
	}
	for _, sigma := range []float64{0.1, 0.3} {
		for _, m := range []time.Duration{0, 30 * time.Minute} {
			vs = append(vs, tuneVariant{name: fmt.Sprintf("misestimate σ=%.1f margin %s", sigma, m), cfg: Config{Planner: policy.Config{SafetyMargin: m}},
				jobs: func(js []Job) []Job { return misestimate(js, sigma, 1) }},
				tuneVariant{name: fmt.Sprintf("overestimate σ=%.1f margin %s", sigma, m), cfg: Config{Planner: policy.Config{SafetyMargin: m}},
					jobs: func(js []Job) []Job { return overestimate(js, sigma, 1) }})
		}
	}
	return vs
}

// BenchmarkTuneBacktest compares back-test settings (tick, hysteresis,
// forecaster) on both workload shapes.
func BenchmarkTuneBacktest(b *testing.B) { tuneRun(b, tuneVariants()) }

func tuneVariants() []tuneVariant {
	naive := forecast.Forecaster{Method: forecast.MethodSeasonalDay}
	profile := forecast.Forecaster{Method: forecast.MethodProfile}
	regression := forecast.Forecaster{Method: forecast.MethodRegression}
	vs := []tuneVariant{
		{name: "naive-once", cfg: Config{Tick: -1, Forecaster: naive}},
		{name: "perfect-forecast", cfg: Config{ForecastNoise: 1e-9}},
		{name: "profile hys=0.05", cfg: Config{Forecaster: profile, Planner: policy.Config{Hysteresis: 0.05}}},
		{name: "profile hys=0.001", cfg: Config{Forecaster: profile, Planner: policy.Config{Hysteresis: 0.001}}},
		{name: "profile hys=1e-09 tick=15m", cfg: Config{Tick: 15 * time.Minute, Forecaster: profile, Planner: policy.Config{Hysteresis: 1e-9}}},
	}
	for _, h := range []float64{0.01, 1e-9} {
		vs = append(vs,
			tuneVariant{name: fmt.Sprintf("profile hys=%g", h), cfg: Config{Forecaster: profile, Planner: policy.Config{Hysteresis: h}}},
			tuneVariant{name: fmt.Sprintf("regression hys=%g", h), cfg: Config{Forecaster: regression, Planner: policy.Config{Hysteresis: h}}})
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
	vs = append(vs, tuneVariant{name: "fc base", cfg: Config{Forecaster: profile}})
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
		vs = append(vs, tuneVariant{name: "fc " + name, cfg: Config{Forecaster: forecast.Forecaster{Method: forecast.MethodProfile, Params: &p}}})
	}
	return vs
}

// BenchmarkTuneBuckets splits the single-region gap by job duration, on the
// uniform shape of the tuning years.
func BenchmarkTuneBuckets(b *testing.B) { tuneBuckets(b) }

func tuneBuckets(t testing.TB) {
	t.Helper()
	data := benchSetup(t)
	single, _ := evalCases(t, data, shapeUniform, tuneYears(t), 1500, 0)
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

// BenchmarkTuneForecastDecisions scores forecaster candidates for
// decisions (issue 18 item 1) with the default planner, 2000 jobs per
// zone, fraction of the oracle's savings, mean (worst) of the five zones,
// zero misses and dominance violations everywhere. Reference policy: wh
// 21–22 0.684 (0.513), uniform 21–22 0.741 (0.618), wh 2023 0.746
// (0.606), uniform 2023 0.788 (0.670).
//
//	| candidate                          | wh 21–22      | DE 21 / 22    | uniform 21–22 | wh 2023       | uniform 2023  |
//	|------------------------------------|---------------|---------------|---------------|---------------|---------------|
//	| defaults (Floor 0.2)               | 0.733 (0.593) | 0.650 / 0.680 | 0.777 (0.656) | 0.783 (0.691) | 0.810 (0.676) |
//	| reference forecast, greenq planner | 0.685 (0.524) | 0.584 / 0.616 |               |               |               |
//	| blend 0.5 own + reference          | 0.719 (0.569) | 0.632 / 0.667 |               |               |               |
//	| fade linear to 0 over 6 / 12 / 24 h| 0.668 / 0.686 / 0.711 (0.479 / 0.517 / 0.564) | | |           |               |
//	| days 7, fade 12 h (reference-like) | 0.679 (0.515) | 0.577 / 0.605 |               |               |               |
//	| profile half-life 2 / 4 / 7 days   | 0.724 / 0.737 / 0.737 (0.569 / 0.588 / 0.594) | | |           |               |
//	| days 7                             | 0.725 (0.582) | 0.666 / 0.679 |               |               |               |
//	| week weight 0.3                    | 0.739 (0.600) | 0.728 / 0.663 |               |               |               |
//	| floor 0.3                          | 0.739 (0.595) | 0.656 / 0.682 | 0.777 (0.660) | 0.784 (0.693) | 0.812 (0.682) |
//	| floor 0.4                          | 0.743 (0.606) | 0.662 / 0.688 | 0.776 (0.659) | 0.783 (0.694) | 0.810 (0.678) |
//	| floor 0.5                          | 0.744 (0.616) | 0.667 / 0.678 | 0.774 (0.650) | 0.784 (0.696) | 0.811 (0.673) |
//	| floor 0.6 / 0.7 / 0.85             | 0.742 / 0.733 / 0.727 (0.612 / 0.603 / 0.593) | | |           |               |
//	| floor 0.5 + week 0.3 / half-life 7 d / decay 0.9 / level 3 h | 0.735 / 0.743 / 0.741 / 0.740 (0.603 / 0.606 / 0.598 / 0.609) | | | | |
//	| floor fitted per zone, capped 0.5  | 0.739 (0.595) | 0.653 / 0.675 | 0.773 (0.654) |               |               |
//	| floor fitted per zone, capped 0.6 / 0.8 | 0.739 / 0.739 (0.595 / 0.594) | 0.654 / 0.675 | 0.773 (0.647) at 0.6 | |    |
//	| regression (MethodRegression)      | 0.730 (0.582) | 0.634 / 0.686 | 0.776 (0.639) |               |               |
//	| ensemble: mean of profile and regression | 0.738 (0.583) |         | 0.775 (0.636) |               |               |
//
// The level correction's floor is the only knob that won on 2021–2022;
// fading the correction to zero (as the reference does), a shorter or
// exponentially weighted profile, and blending in the reference forecast
// all lost, the faster the fade the more: DE's gap is not a slow level
// shift the 14-day profile misses. Floor 0.5 lost uniform rows to the
// reference (CA-ON 2022 0.735 against 0.742, AU-NSW 2023 0.934 against
// 0.936). Floor 0.3 kept every row above the reference but moved the
// 2023 means by ≤ 0.002 (noise) and cut BenchmarkVintages' GB own-forecaster
// row from 0.213 to 0.035 (CAISO 0.231 → 0.222; 1.5 days of history), so
// the default stays 0.2. The half-life and linear-fade variants were
// options of forecast.Params while measured and are not kept.
//
// Third round: the floor fitted on each zone's own history (the slope of
// the deviation 24–48 h later on the deviation now, over the forecast's
// 22-day window) came out near the default everywhere, won 0.006 on the
// working-hours mean, lost 0.004 on uniform and put CA-ON 2022 (uniform)
// below the reference again (0.734 against 0.742); the regression method
// and an even ensemble of it with the profile lost or traded the mean for
// the worst zone. None is kept; DE-LU 2023 stays at 0.691.
func BenchmarkTuneForecastDecisions(b *testing.B) { tuneRun(b, forecastVariants()) }

func forecastVariants() []tuneVariant {
	own := func(name string, m func(p *forecast.Params)) tuneVariant {
		p := forecast.DefaultParams
		m(&p)
		return tuneVariant{name: "fc " + name, cfg: Config{Forecaster: forecast.Forecaster{Params: &p}}}
	}
	vs := []tuneVariant{
		{name: "fc defaults"},
		{name: "fc reference", cfg: Config{Forecaster: refForecaster{}}},
		{name: "fc blend 0.5 reference", cfg: Config{Forecaster: blendForecaster{a: forecast.Forecaster{}, b: refForecaster{}, w: 0.5}}},
	}
	vs = append(vs,
		own("days=7", func(p *forecast.Params) { p.Days = 7 }),
		own("week=0.3", func(p *forecast.Params) { p.WeekWeight = 0.3 }),
		own("floor=0.5", func(p *forecast.Params) { p.Floor = 0.5 }),
	)
	// Second round, around the first round's winners.
	for _, fl := range []float64{0.3, 0.4, 0.6, 0.7, 0.85} {
		vs = append(vs, own(fmt.Sprintf("r2 floor=%g", fl), func(p *forecast.Params) { p.Floor = fl }))
	}
	vs = append(vs,
		own("r2 floor=0.5 week=0.3", func(p *forecast.Params) { p.Floor = 0.5; p.WeekWeight = 0.3 }),
		own("r2 floor=0.5 decay=0.9", func(p *forecast.Params) { p.Floor = 0.5; p.Decay = 0.9 }),
		own("r2 floor=0.5 level=3", func(p *forecast.Params) { p.Floor = 0.5; p.LevelHours = 3 }),
	)
	vs = append(vs,
		tuneVariant{name: "fc r3 regression", cfg: Config{Forecaster: forecast.Forecaster{Method: forecast.MethodRegression}}},
		tuneVariant{name: "fc r3 ensemble profile+regression", cfg: Config{Forecaster: blendForecaster{a: forecast.Forecaster{}, b: forecast.Forecaster{Method: forecast.MethodRegression}, w: 0.5}}},
	)
	return vs
}

// blendForecaster averages two forecasts point by point, w on b.
type blendForecaster struct {
	a, b Forecaster
	w    float64
}

func (f blendForecaster) Forecast(history forecast.Series, from time.Time, horizon time.Duration) forecast.Series {
	out := f.a.Forecast(history, from, horizon)
	other := f.b.Forecast(history, from, horizon)
	for i, p := range out.Points {
		if v, cov := other.Mean(p.Start, p.End); cov > 0 {
			out.Points[i].GCO2PerKWh = (1-f.w)*p.GCO2PerKWh + f.w*v
		}
	}
	return out
}
