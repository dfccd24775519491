package forecast_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// hourly builds n hourly points from t0 with value f(i).
func hourly(n int, f func(i int) float64) forecast.Series {
	s := forecast.Series{Region: "r", Zone: "Z", Signal: forecast.SignalAverage}
	for i := 0; i < n; i++ {
		t := t0.Add(time.Duration(i) * time.Hour)
		s.Points = append(s.Points, forecast.Point{Start: t, End: t.Add(time.Hour), GCO2PerKWh: f(i), Kind: forecast.KindActual})
	}
	return s
}

func TestForecasterUsesOnlyThePast(t *testing.T) {
	t.Parallel()
	cycle := func(i int) float64 { return 200 + 50*math.Sin(float64(i%24)/24*2*math.Pi) }
	hist := hourly(30*24, cycle)
	from := t0.Add(20 * 24 * time.Hour)
	future := hourly(30*24, func(i int) float64 {
		if t0.Add(time.Duration(i) * time.Hour).Before(from) {
			return cycle(i)
		}
		return 9999
	})
	for _, m := range []forecast.Method{forecast.MethodProfile, forecast.MethodRegression, forecast.MethodSeasonalDay, forecast.MethodSeasonalWeek} {
		f := forecast.Forecaster{Method: m}
		a := f.Forecast(hist, from, 72*time.Hour)
		b := f.Forecast(future, from, 72*time.Hour)
		require.Equal(t, a, b, "method %s read the future", m)
		require.Len(t, a.Points, 72)
		require.NoError(t, a.Validate())
		require.Equal(t, forecast.KindEstimate, a.Points[0].Kind)
		// A pure daily cycle is forecast exactly.
		for i, p := range a.Points {
			require.InDelta(t, cycle(20*24+i), p.GCO2PerKWh, 1e-6, "method %s lead %d", m, i)
		}
	}
}

func TestForecasterEdgeCases(t *testing.T) {
	t.Parallel()
	f := forecast.Forecaster{}
	empty := f.Forecast(forecast.Series{Signal: forecast.SignalMarginal}, t0, time.Hour)
	require.Empty(t, empty.Points)
	require.Equal(t, forecast.SignalMarginal, empty.Signal)
	// Two hours of history: falls back to the level, never negative.
	short := f.Forecast(hourly(2, func(i int) float64 { return float64(10 * i) }), t0.Add(2*time.Hour), 48*time.Hour)
	require.Len(t, short.Points, 48)
	for _, p := range short.Points {
		require.GreaterOrEqual(t, p.GCO2PerKWh, 0.0)
	}
}

func TestBuildPoints(t *testing.T) {
	t.Parallel()
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	pts, err := forecast.BuildPoints([]forecast.Sample{
		{Start: at(60), Value: 2},
		{Start: at(0), Value: 1, Kind: forecast.KindActual},
		{Start: at(60), Value: 99}, // repeated start: the first given wins
		{Start: at(120), Value: 3, Duration: 30 * time.Minute},
		{Start: at(600), Value: 4}, // after a gap: median step, not the gap
	}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []forecast.Point{
		{Start: at(0), End: at(60), GCO2PerKWh: 1, Kind: forecast.KindActual},
		{Start: at(60), End: at(120), GCO2PerKWh: 2, Kind: forecast.KindForecast},
		{Start: at(120), End: at(150), GCO2PerKWh: 3, Kind: forecast.KindForecast},
		{Start: at(600), End: at(660), GCO2PerKWh: 4, Kind: forecast.KindForecast},
	}, pts)
	for _, bad := range []float64{math.NaN(), math.Inf(1), -1} {
		_, err := forecast.BuildPoints([]forecast.Sample{{Start: t0, Value: bad}}, 0)
		require.ErrorIs(t, err, forecast.ErrBadPayload)
	}
}

func TestSplice(t *testing.T) {
	t.Parallel()
	base := hourly(3, func(int) float64 { return 1 })
	ext := hourly(6, func(int) float64 { return 2 })
	out := forecast.Splice(base, ext.Points)
	require.Len(t, out.Points, 6)
	require.Equal(t, 1.0, out.Points[2].GCO2PerKWh)
	require.Equal(t, 2.0, out.Points[3].GCO2PerKWh)
	require.Len(t, base.Points, 3, "base untouched")
}

func TestEvaluateMAE(t *testing.T) {
	t.Parallel()
	actual := hourly(10*24, func(i int) float64 { return float64(i % 24) })
	plus := func(h forecast.Series, from time.Time, horizon time.Duration) forecast.Series {
		s := forecast.Forecaster{Method: forecast.MethodSeasonalDay}.Forecast(h, from, horizon)
		for i := range s.Points {
			s.Points[i].GCO2PerKWh += 2
		}
		return s
	}
	r := forecast.EvaluateMAE(actual, plus, []time.Time{t0.Add(5 * 24 * time.Hour), t0.Add(6 * 24 * time.Hour)}, 24)
	require.Equal(t, 2, r.N[0])
	require.InDelta(t, 2, r.At(1), 1e-9)
	require.InDelta(t, 2, r.Avg(24), 1e-9)
	require.True(t, math.IsNaN(r.At(25)))
}

// TestRegressionLearnsPersistence: on a daily cycle plus a deviation that
// persists and then decays (AR(2)-like), the fitted model predicts the
// next hours better than MethodProfile's fixed fading level, and both use
// only the past.
func TestRegressionLearnsPersistence(t *testing.T) {
	t.Parallel()
	dev := make([]float64, 40*24)
	var state, prev float64
	for i := range dev {
		// A deterministic pseudo-random shock every 5 h.
		shock := 0.0
		if i%5 == 0 {
			shock = 30 * math.Sin(float64(i)*1.7)
		}
		state, prev = 1.5*state-0.6*prev+shock, state
		dev[i] = state
	}
	series := hourly(len(dev), func(i int) float64 { return 300 + 80*math.Sin(float64(i%24)/24*2*math.Pi) + dev[i] })
	var errProfile, errReg float64
	for day := 30; day < 39; day++ {
		from := t0.Add(time.Duration(day*24+7) * time.Hour)
		hist := series.Slice(time.Time{}, from)
		for _, tc := range []struct {
			m   forecast.Method
			err *float64
		}{{forecast.MethodProfile, &errProfile}, {forecast.MethodRegression, &errReg}} {
			fc := forecast.Forecaster{Method: tc.m}.Forecast(hist, from, 3*time.Hour)
			require.Len(t, fc.Points, 3)
			for _, p := range fc.Points {
				actual, _ := series.Mean(p.Start, p.End)
				*tc.err += math.Abs(p.GCO2PerKWh - actual)
			}
		}
	}
	require.Less(t, errReg, errProfile)
}

// fiveMinute builds n five-minute points from t0 with value f(i).
func fiveMinute(n int, f func(i int) float64) forecast.Series {
	s := forecast.Series{Region: "r", Zone: "Z", Signal: forecast.SignalMarginal}
	for i := 0; i < n; i++ {
		t := t0.Add(time.Duration(i) * 5 * time.Minute)
		s.Points = append(s.Points, forecast.Point{Start: t, End: t.Add(5 * time.Minute), GCO2PerKWh: f(i), Kind: forecast.KindActual})
	}
	return s
}

func TestForecasterKeepsTheHistorysResolution(t *testing.T) {
	t.Parallel()
	// Every hour of day has its own level; history at 5 minutes.
	byHour := func(i int) float64 { return 100 + 10*float64((i/12)%24) }
	hist := fiveMinute(20*24*12, byHour)
	from := hist.End()
	f := forecast.Forecaster{}
	fine := f.Forecast(hist, from, 24*time.Hour)
	coarse := f.Forecast(hourly(20*24, func(i int) float64 { return byHour(i * 12) }), from, 24*time.Hour)
	require.NoError(t, fine.Validate())
	require.Len(t, fine.Points, 24*12)
	require.Len(t, coarse.Points, 24)
	for i, p := range fine.Points {
		require.Equal(t, from.Add(time.Duration(i)*5*time.Minute), p.Start)
		require.Equal(t, 5*time.Minute, p.End.Sub(p.Start))
	}
	// Inside each hour the line runs between the hourly values around it.
	for i, p := range fine.Points[6 : len(fine.Points)-6] {
		h := (i + 6) / 12
		lo, hi := coarse.Points[h].GCO2PerKWh, coarse.Points[h].GCO2PerKWh
		for _, k := range []int{h - 1, h + 1} {
			if k >= 0 && k < len(coarse.Points) {
				lo, hi = min(lo, coarse.Points[k].GCO2PerKWh), max(hi, coarse.Points[k].GCO2PerKWh)
			}
		}
		require.True(t, p.GCO2PerKWh >= lo-1e-9 && p.GCO2PerKWh <= hi+1e-9, "point %d: %v outside [%v, %v]", i+6, p.GCO2PerKWh, lo, hi)
	}
	// It starts from the last value seen, not from the hour's mean.
	last := hist.Points[len(hist.Points)-1].GCO2PerKWh
	require.Less(t, math.Abs(fine.Points[0].GCO2PerKWh-last), math.Abs(coarse.Points[0].GCO2PerKWh-last)+1e-9)
	// Where the next hour is lower, a later start inside the hour is
	// cheaper: the step function could not tell.
	require.Less(t, fine.Points[len(fine.Points)-1].GCO2PerKWh, fine.Points[len(fine.Points)-12].GCO2PerKWh)
}

func TestForecasterOnShortHistory(t *testing.T) {
	t.Parallel()
	f := forecast.Forecaster{}
	// A spike in the last hour: after 20 days it shifts the far forecast
	// by the floor of the correction; after one day, by little of it,
	// since a one-day profile says little about what lasts.
	spike := func(days int) forecast.Series {
		n := days * 24
		return hourly(n, func(i int) float64 {
			if i == n-1 {
				return 200
			}
			return 100
		})
	}
	long := f.Forecast(spike(20), t0.Add(20*24*time.Hour), 72*time.Hour)
	short := f.Forecast(spike(1), t0.Add(24*time.Hour), 72*time.Hour)
	farLong, farShort := long.Points[70].GCO2PerKWh, short.Points[70].GCO2PerKWh
	require.InDelta(t, 100+forecast.DefaultParams.Floor*100, farLong, 3)
	require.Greater(t, farShort, 100.0)
	require.Less(t, farShort-100, (farLong-100)/4)

	// Six hours of history: hours of day not seen yet are forecast from
	// the history's mean, not as the last value repeated.
	ramp := f.Forecast(hourly(6, func(i int) float64 { return float64(100 * (i + 1)) }), t0.Add(6*time.Hour), 24*time.Hour)
	// Lead 17 h is 23:00, an hour the history has not seen; the last value
	// is 600, the mean 350.
	require.Less(t, ramp.Points[17].GCO2PerKWh, 600-250.0/3)
	require.Greater(t, ramp.Points[17].GCO2PerKWh, 350.0)
}

func TestForecasterBoundsTheFineResolution(t *testing.T) {
	t.Parallel()
	// Ten-second history: the forecast is at 5 minutes, not 10 s.
	s := forecast.Series{Region: "r", Zone: "Z", Signal: forecast.SignalAverage}
	for i := 0; i < 3*24*360; i++ {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		s.Points = append(s.Points, forecast.Point{Start: at, End: at.Add(10 * time.Second), GCO2PerKWh: float64(100 + i%360), Kind: forecast.KindActual})
	}
	fc := forecast.Forecaster{}.Forecast(s, s.End(), 48*time.Hour)
	require.Len(t, fc.Points, 48*12)
	require.Equal(t, 5*time.Minute, fc.Points[0].End.Sub(fc.Points[0].Start))
	require.NoError(t, fc.Validate())
}
