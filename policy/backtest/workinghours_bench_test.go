package backtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

// zoneLocations are the time zones of the bench zones' working hours.
var zoneLocations = map[string]string{
	"GB": "Europe/London", "DE-LU": "Europe/Berlin", "US-CAL-CISO": "America/Los_Angeles",
	"CA-ON": "America/Toronto", "AU-NSW": "Australia/Sydney",
}

func benchLocations(t testing.TB) map[string]*time.Location {
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
func (ts *traceSampler) workingHours(t testing.TB, n int, from, to time.Time, regions []string, seed uint64) []Job {
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

// whYears are the years the working-hours table validates on: 2023 unless
// GREENQ_BENCH_WH_YEARS names others (2021,2022 are the tuning years).
func whYears(t testing.TB) []int {
	t.Helper()
	return envYears(t, "GREENQ_BENCH_WH_YEARS", []int{2023})
}

// BenchmarkWorkingHours: the working-hours shape, one zone at a time (time
// shifting only) and the five zones together, out of sample (2023), with
// greenq, the reference policy and the oracle; then the same split by
// slack and by interruptibility. GREENQ_BENCH_WRITE_WORKLOADS=DIR also
// writes each workload as a CSV for `greenq simulate`.
func BenchmarkWorkingHours(b *testing.B) { workingHoursReport(b) }

func workingHoursReport(t testing.TB) {
	t.Helper()
	data := benchSetup(t)
	writeDir := os.Getenv("GREENQ_BENCH_WRITE_WORKLOADS")
	var b, split strings.Builder
	b.WriteString("### Working-hours workload: greenq against the reference policy and the oracle\n\n")
	b.WriteString("| case | jobs | now tCO2e | oracle saves | greenq saves | greenq: fraction | misses | dominance violations | reference: fraction | misses | greenq − reference | wall (whole run) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	split.WriteString("By slack (deadline − submit − run time) and kind, fraction of the oracle's savings, greenq / reference (jobs):\n\n| case | " +
		"< 8 h | 8–20 h | 20–40 h | > 40 h | run in one piece | interruptible |\n|---|---|---|---|---|---|---|\n")
	row := func(c caseScore, jobs []Job) {
		r, p := c.res, c.res.Policies
		fmt.Fprintf(&b, "| %s | %d | %.1f | %s | %s | %.3f | %d | %d | %.3f | %d | %+.3f | %s |\n", c.name, r.Jobs, p.Now.GCO2/1e6, pct(savings(r, p.Oracle)), pct(savings(r, p.GreenQ)),
			r.FractionOfOracleSavings, p.GreenQ.DeadlineMisses, *p.GreenQ.DominanceViolations, refFraction(r), p.Reference.DeadlineMisses, r.FractionOfOracleSavings-refFraction(r), c.wall.Round(time.Millisecond))
		if writeDir != "" {
			require.NoError(t, os.MkdirAll(writeDir, 0o755))
			fh, err := os.Create(filepath.Join(writeDir, strings.ReplaceAll(c.name, " ", "_")+".csv"))
			require.NoError(t, err)
			require.NoError(t, WriteWorkload(fh, jobs))
			require.NoError(t, fh.Close())
		}
		splitRow(&split, c.name, c.js)
	}
	for _, y := range whYears(t) {
		single, five := evalCases(t, data, shapeWorkingHours, []int{y}, 2000, 5000)
		one := evaluate(t, single, Config{})
		for i, c := range one.cases {
			row(c, single[i].jobs)
		}
		mean, worst, refMean, refWorst, _, _, _ := one.summary()
		fmt.Fprintf(&b, "| mean of %d zones, %d | | | | | **%.3f** | | | %.3f | | %+.3f | |\n", len(benchZones), y, mean, refMean, mean-refMean)
		fmt.Fprintf(&b, "| worst zone, %d | | | | | %.3f | | | %.3f | | | |\n", y, worst, refWorst)
		splitRow(&split, fmt.Sprintf("one zone, %d (five zones' jobs pooled)", y), one.pooled)
		all := evaluate(t, five, Config{})
		row(all.cases[0], five[0].jobs)
	}
	fmt.Fprintf(&b, "\nWorkload per zone: 2000 jobs, every job allowed only in that zone; five regions: 5000 jobs, each allowed in all five zones in a random order per job whose first is its home region (where now runs it, and whose local working hours it keeps). Submit days 01-08 → 12-26. %s greenq: the back-test defaults (own forecaster, re-plan every %s, running interruptible jobs re-decided then). Dominance violations: interruptible jobs planned, at some decision, to emit more than the same job in one piece (see PolicyResult.DominanceViolations). %s Forecasters and planner tuned on 2021–2022 (tune_test.go); 2023 is out of sample.\n\n%s",
		workingHoursRule, Config{}.WithDefaults().Tick, referenceRule, split.String())
	benchWrite(t, "working_hours", b.String())
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
