package policy_test

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// fixtureZones are the zones in testdata, in the order regions are named.
var fixtureZones = []string{"GB", "US-CAL-CISO", "DE-LU", "CA-ON"}

// t0 is the start of the fixtures.
var t0 = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)

// loadSeries reads testdata/em_<zone>_2023-06-01_04.csv as hourly points.
func loadSeries(tb testing.TB, zone string) forecast.Series {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "em_"+zone+"_2023-06-01_04.csv"))
	require.NoError(tb, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(tb, err)
	s := forecast.Series{Region: zone, Zone: zone, Source: "file", Signal: forecast.SignalAverage}
	for _, row := range rows[1:] {
		ts, err := time.Parse(time.RFC3339, row[0])
		require.NoError(tb, err)
		v, err := strconv.ParseFloat(row[1], 64)
		require.NoError(tb, err)
		s.Points = append(s.Points, forecast.Point{Start: ts, End: ts.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindActual})
	}
	require.NoError(tb, s.Validate())
	return s
}

// fixtureRegions returns n regions built from the fixtures: region i uses
// zone i mod 4, shifted by 3h × (i / 4) so that more than four regions still
// differ (the shift wraps inside the four days).
func fixtureRegions(tb testing.TB, n int) []policy.Region {
	tb.Helper()
	base := make([]forecast.Series, len(fixtureZones))
	for i, z := range fixtureZones {
		base[i] = loadSeries(tb, z)
	}
	out := make([]policy.Region, n)
	for i := range out {
		src := base[i%len(base)]
		shift := 3 * (i / len(base))
		s := src
		s.Points = make([]forecast.Point, len(src.Points))
		for k := range src.Points {
			p := src.Points[(k+shift)%len(src.Points)]
			p.Start, p.End = src.Points[k].Start, src.Points[k].End
			s.Points[k] = p
		}
		out[i] = policy.Region{Name: fmt.Sprintf("r%d-%s", i, fixtureZones[i%len(base)]), PUE: 1.1, Price: policy.PriceSchedule{USDPerGPUHour: 2 + 0.1*float64(i)}, Series: s}
	}
	return out
}

// workload returns n jobs submitted by now with deadlines inside horizon;
// a fifth are interruptible, a third restricted to three regions.
func workload(n int, now time.Time, regions []policy.Region, horizon time.Duration, seed uint64) []policy.Job {
	rng := rand.New(rand.NewPCG(seed, 1))
	jobs := make([]policy.Job, n)
	for i := range jobs {
		d := time.Duration(1+rng.IntN(24)) * 15 * time.Minute
		slack := time.Duration(rng.Int64N(int64(horizon - d)))
		j := policy.Job{
			ID:            "j" + strconv.Itoa(i),
			GPUs:          1 + rng.IntN(4),
			Duration:      d,
			Earliest:      now.Add(-time.Hour),
			Deadline:      now.Add(d + slack),
			Interruptible: rng.IntN(5) == 0,
		}
		if rng.IntN(3) == 0 {
			for k := 0; k < 3; k++ {
				j.Regions = append(j.Regions, regions[rng.IntN(len(regions))].Name)
			}
		}
		jobs[i] = j
	}
	return jobs
}
