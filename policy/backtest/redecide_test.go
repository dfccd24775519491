package backtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
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
	require.Len(t, plain.Placements, 1, "by default it runs on: %+v", plain.Placements)
	require.Equal(t, t0, plain.Placements[0].Start)
	require.Len(t, redecided.Placements, 2, "%+v", redecided.Placements)
	require.Equal(t, hour(1), redecided.Placements[0].End, "paused at the tick")
	require.False(t, redecided.Placements[1].Start.Before(hour(6)), "%+v", redecided.Placements)
	require.Less(t, redecided.Policies.GreenQ.GCO2, plain.Policies.GreenQ.GCO2/2)
}
