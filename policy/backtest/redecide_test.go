package backtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// TestRedecidePausesARunningJob: an interruptible job starts in a window
// the first forecast calls clean; an hour in, a new forecast says the next
// hours are dirty and a later window clean. By default it pauses at that
// tick and runs the rest in the later window, as the server's planner
// pauses it (planning.Planner.Pauses); under Config.runSegments it runs on
// to its planned end.
func TestRedecidePausesARunningJob(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2023, 5, 1, 12, 0, 0, 0, time.UTC)
	hour := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	series := func(issued time.Time, from, to int, v func(h int) float64, kind forecast.PointKind) forecast.Series {
		s := forecast.Series{Region: "R", Zone: "R", Signal: forecast.SignalAverage, IssuedAt: issued}
		for h := from; h < to; h++ {
			s.Points = append(s.Points, forecast.Point{Start: hour(h), End: hour(h + 1), GCO2PerKWh: v(h), Kind: kind})
		}
		return s
	}
	actual := func(h int) float64 {
		switch {
		case h == 0, h >= 6 && h < 9:
			return 100
		case h >= 1 && h < 4:
			return 500
		}
		return 300
	}
	first := func(h int) float64 {
		if h < 3 {
			return 100
		}
		return 500
	}
	cfg := Config{
		Carbon: map[string]forecast.Series{"R": series(time.Time{}, -48, 48, actual, forecast.KindActual)},
		Forecasts: map[string][]forecast.Series{"R": {
			series(t0.Add(-time.Minute), 0, 24, first, forecast.KindForecast),
			series(hour(1).Add(-time.Minute), 1, 24, actual, forecast.KindForecast),
		}},
		Jobs:  []Job{{ID: "j", Submit: t0, Duration: 3 * time.Hour, GPUs: 1, PowerW: DefaultPowerW, Deadline: hour(10), Interruptible: true}},
		Clock: fixedClock,
	}
	run := func(redecide bool) Result {
		c := cfg
		c.runSegments = !redecide
		res, err := Run(context.Background(), c, nil)
		require.NoError(t, err)
		checkPlacements(t, c.Jobs, res.Placements, res.Regions)
		return res
	}
	plain, redecided := run(false), run(true)
	require.Len(t, plain.Placements, 1, "under runSegments it runs on: %+v", plain.Placements)
	require.Equal(t, t0, plain.Placements[0].Start)
	require.Len(t, redecided.Placements, 2, "%+v", redecided.Placements)
	require.Equal(t, hour(1), redecided.Placements[0].End, "paused at the tick")
	require.False(t, redecided.Placements[1].Start.Before(hour(6)), "%+v", redecided.Placements)
	require.Less(t, redecided.Policies.GreenQ.GCO2, plain.Policies.GreenQ.GCO2/2)
}

// TestRedecideKeepsTheClockGoingForward: a running job cut at a tick
// while no other job is pending, and planned to go on a little later (the
// latest start before its deadline), resumes then, after the cut. (The
// hourly tick was left behind at the cut, so the simulation went back to
// it and placed the rest before the cut, overlapping the run.)
func TestRedecideKeepsTheClockGoingForward(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	clean := forecast.Series{Region: "R", Signal: forecast.SignalAverage, Points: []forecast.Point{
		{Start: at(0), End: at(61), GCO2PerKWh: 0, Kind: forecast.KindActual},
		{Start: at(61), End: at(62), GCO2PerKWh: 1, Kind: forecast.KindActual},
	}}
	job := Job{ID: "j", Submit: t0, Duration: 150 * time.Minute, Deadline: at(151), GPUs: 1, PowerW: DefaultPowerW, Interruptible: true}
	cfg := Config{Carbon: map[string]forecast.Series{"R": clean}, Jobs: []Job{job}, Clock: fixedClock,
		Planner: policy.Config{Slot: 5 * time.Minute}}
	res, err := Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	checkPlacements(t, cfg.Jobs, res.Placements, res.Regions)
	require.Len(t, res.Placements, 2, "%+v", res.Placements)
	require.Equal(t, t0, res.Placements[0].Start)
	require.False(t, res.Placements[1].Start.Before(res.Placements[0].End), "%+v", res.Placements)
}
