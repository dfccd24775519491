package backtest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
	_ "time/tzdata" // the working-hours shape keeps local time

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

var update = flag.Bool("update", false, "rewrite testdata/workinghours/workload.csv from the generator")

// phillySample reads the committed sample of the Philly runtimes.
func phillySample(t *testing.T) []time.Duration {
	t.Helper()
	rows := readCSV(t, "testdata/workinghours/philly_runtime_sample.csv")
	var out []time.Duration
	for _, r := range rows[1:] {
		v, err := strconv.ParseFloat(r[0], 64)
		require.NoError(t, err)
		out = append(out, time.Duration(v*float64(time.Second)))
	}
	return out
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	return loc
}

// fixtureWorkingHours is the configuration testdata/workinghours/workload.csv
// was generated with.
func fixtureWorkingHours(t *testing.T) WorkingHours {
	return WorkingHours{
		N: 120, From: time.Date(2023, 3, 8, 0, 0, 0, 0, time.UTC), To: time.Date(2023, 3, 18, 0, 0, 0, 0, time.UTC),
		Regions: []string{"DE-LU"}, Locations: map[string]*time.Location{"DE-LU": berlin(t)},
		Durations: phillySample(t), Seed: 2023,
	}
}

func TestWorkingHoursDeadline(t *testing.T) {
	t.Parallel()
	loc := berlin(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc).UTC() }
	for _, tc := range []struct {
		kind   string
		submit time.Time
		want   time.Time
	}{
		{DeadlineNextWorkday, at(2023, 3, 8, 10, 30), at(2023, 3, 9, 9, 0)},   // Wednesday → Thursday
		{DeadlineNextWorkday, at(2023, 3, 10, 16, 59), at(2023, 3, 13, 9, 0)}, // Friday → Monday
		{DeadlineNextWorkday, at(2023, 3, 24, 9, 0), at(2023, 3, 27, 9, 0)},   // across the switch to CEST
		{Deadline8h, at(2023, 3, 8, 10, 30), at(2023, 3, 8, 18, 30)},
		{Deadline24h, at(2023, 3, 10, 12, 0), at(2023, 3, 11, 12, 0)},
		{Deadline72h, at(2023, 3, 10, 12, 0), at(2023, 3, 13, 12, 0)},
	} {
		got := WorkingHoursDeadline(tc.kind, tc.submit, loc)
		require.True(t, got.Equal(tc.want), "%s from %s: got %s, want %s", tc.kind, tc.submit, got, tc.want)
	}
	require.Equal(t, 7, at(2023, 3, 27, 9, 0).Hour(), "09:00 CEST is 07:00 UTC")
}

func TestWorkingHoursShape(t *testing.T) {
	t.Parallel()
	loc := berlin(t)
	cfg := WorkingHours{
		N: 4000, From: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Regions: []string{"DE-LU", "GB", "CA-ON"}, Locations: map[string]*time.Location{"DE-LU": loc},
		Durations: phillySample(t), GPUs: []int{1, 2, 8}, Seed: 7,
	}
	jobs, err := WorkingHoursJobs(cfg)
	require.NoError(t, err)
	again, err := WorkingHoursJobs(cfg)
	require.NoError(t, err)
	require.Equal(t, jobs, again, "seeded")
	kinds := map[string]int{}
	var intr int
	for i, j := range jobs {
		if i > 0 {
			require.False(t, j.Submit.Before(jobs[i-1].Submit), "sorted by submit")
		}
		require.Len(t, j.Regions, 3)
		home := time.UTC
		if j.Regions[0] == "DE-LU" {
			home = loc
		}
		local := j.Submit.In(home)
		require.NotContains(t, []time.Weekday{time.Saturday, time.Sunday}, local.Weekday(), j.ID)
		require.True(t, local.Hour() >= 9 && local.Hour() < 17, "%s submitted at %s local", j.ID, local)
		require.Equal(t, 2023, local.Year())
		require.False(t, j.Submit.Add(j.Duration).After(j.Deadline), "%s cannot meet its deadline", j.ID)
		require.GreaterOrEqual(t, j.PowerW, 250.0)
		require.LessOrEqual(t, j.PowerW, 700.0)
		require.Contains(t, cfg.GPUs, j.GPUs)
		found := ""
		for _, k := range []string{DeadlineNextWorkday, Deadline8h, Deadline24h, Deadline72h} {
			if WorkingHoursDeadline(k, j.Submit, home).Equal(j.Deadline) {
				found = k
			}
		}
		require.NotEmpty(t, found, "%s: deadline %s is none of the four kinds", j.ID, j.Deadline)
		kinds[found]++
		if j.Interruptible {
			intr++
		}
	}
	for k, n := range kinds {
		require.InDelta(t, 0.25, float64(n)/float64(len(jobs)), 0.03, k)
	}
	require.InDelta(t, 0.3, float64(intr)/float64(len(jobs)), 0.03)

	_, err = WorkingHoursJobs(WorkingHours{N: 1, From: cfg.From, To: cfg.To})
	require.ErrorContains(t, err, "durations")
	_, err = WorkingHoursJobs(WorkingHours{N: 1, From: cfg.To, To: cfg.From, Durations: cfg.Durations})
	require.ErrorContains(t, err, "to")
}

// TestWorkingHoursFixture: the committed workload is what the generator
// makes of the committed runtimes, and back-tests with every policy
// meeting every deadline.
func TestWorkingHoursFixture(t *testing.T) {
	t.Parallel()
	jobs, err := WorkingHoursJobs(fixtureWorkingHours(t))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, WriteWorkload(&b, jobs))
	const path = "testdata/workinghours/workload.csv"
	if *update {
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), b.String(), "run go test -run TestWorkingHoursFixture -update to regenerate")

	read, err := ReadWorkloadFile(path)
	require.NoError(t, err)
	for i := range read {
		read[i].Line = 0
	}
	require.Equal(t, jobs, read, "WriteWorkload and ReadWorkload round-trip")

	res, err := Run(context.Background(), Config{CarbonDir: "testdata/workinghours/carbon", WorkloadFile: path, Clock: fixedClock}, nil)
	require.NoError(t, err)
	p := res.Policies
	for name, pr := range map[string]PolicyResult{"now": p.Now, "greenq": p.GreenQ, "reference": p.Reference, "oracle": p.Oracle} {
		require.Zero(t, pr.DeadlineMisses, name)
	}
	checkPlacements(t, jobs, res.Placements, res.Regions)
	checkPlacements(t, jobs, res.ReferencePlacements, res.Regions)
	require.Less(t, p.Reference.GCO2, p.Now.GCO2, "the reference saves something")
	require.LessOrEqual(t, p.Oracle.GCO2, p.Reference.GCO2)
	require.InDelta(t, (p.Now.GCO2-p.Reference.GCO2)/(p.Now.GCO2-p.Oracle.GCO2), *p.Reference.FractionOfOracleSavings, 1e-12)
	require.Equal(t, res.FractionOfOracleSavings, *p.GreenQ.FractionOfOracleSavings)
}

// TestReferenceNoFuture: the reference policy reads only what was known
// at each decision. Its forecast at t is the same whether or not the
// series goes on past t, and rewriting the actual series from a cut on
// changes none of the runs it decided before the cut.
func TestReferenceNoFuture(t *testing.T) {
	t.Parallel()
	carbon, err := ReadCarbonDir("testdata/workinghours/carbon")
	require.NoError(t, err)
	full := carbon["DE-LU"]
	rh := newRefHours(full)
	for at := full.Points[0].Start.Add(30 * time.Minute); at.Before(full.End()); at = at.Add(7*time.Hour + 13*time.Minute) {
		cut := full
		k := 0
		for k < len(full.Points) && !full.Points[k].End.After(at) {
			k++
		}
		if k == 0 {
			continue
		}
		cut.Points = full.Points[:k:k]
		got, want := rh.forecastAt(ns(at)), newRefHours(cut).forecastAt(ns(at))
		require.Equal(t, *want, *got, "forecast at %s", at)
		for h := floorHour(ns(at)); h < ns(at.Add(96*time.Hour)); h += hourNS {
			require.Equal(t, want.at(h), got.at(h))
		}
	}

	cutAt := time.Date(2023, 3, 13, 14, 0, 0, 0, time.UTC)
	rewritten := full
	rewritten.Points = slices.Clone(full.Points)
	for i := range rewritten.Points {
		if !rewritten.Points[i].Start.Before(cutAt) {
			rewritten.Points[i].GCO2PerKWh = 900 - rewritten.Points[i].GCO2PerKWh*0.5 + float64(i%7)*40
		}
	}
	record := func(s map[string]forecast.Series) map[string][]Decision {
		ds := map[string][]Decision{}
		cfg := Config{Carbon: s, WorkloadFile: "testdata/workinghours/workload.csv", Clock: fixedClock}
		cfg.OnReferenceDecision = func(d Decision) { ds[d.JobID] = append(ds[d.JobID], d) }
		_, err := Run(context.Background(), cfg, nil)
		require.NoError(t, err)
		return ds
	}
	before := record(map[string]forecast.Series{"DE-LU": full})
	after := record(map[string]forecast.Series{"DE-LU": rewritten})
	compared, changed := 0, false
	for id, ds := range before {
		for i, d := range ds {
			if !d.At.Before(cutAt) {
				if i >= len(after[id]) || !d.Segments[0].Start.Equal(after[id][i].Segments[0].Start) {
					changed = true
				}
				break
			}
			require.Equal(t, d, after[id][i], "%s: decision %d, made before the cut", id, i)
			compared++
		}
	}
	require.Greater(t, compared, 30, "the test must compare some decisions")
	require.True(t, changed, "decisions after the cut see the rewritten history")
}
