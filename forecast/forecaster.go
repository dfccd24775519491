package forecast

import (
	"math"
	"time"
)

// Method names one of the forecaster's models.
type Method string

// Methods. MethodProfile is the default: it measured best on greenq's
// benchmark data (see TestBenchTableForecaster and BENCHMARKS.md).
const (
	// MethodSeasonalDay repeats the value 24 h earlier (seasonal naive).
	MethodSeasonalDay Method = "seasonal-day"
	// MethodSeasonalWeek repeats the value 168 h earlier.
	MethodSeasonalWeek Method = "seasonal-week"
	// MethodProfile takes the mean of the same hour over the last days
	// (optionally blended with the same hour a week earlier) and corrects
	// it by the latest residual, a correction that fades with lead time to
	// a floor.
	MethodProfile Method = "profile"
)

// Forecaster is greenq's own forecaster: it predicts a region's intensity
// from its past alone, for horizons no provider covers, regions with history
// only, and as the fallback when a provider is down.
type Forecaster struct {
	// Step is the width of each predicted point. Default 1h.
	Step time.Duration
	// Method picks the model. Default MethodProfile.
	Method Method
	// Params tunes MethodProfile; the zero value means DefaultParams.
	Params *Params
}

// Params tunes MethodProfile.
type Params struct {
	// Days is how many past days at the same hour are averaged.
	Days int
	// WeekWeight is the weight of the same hour one week earlier (0–1).
	WeekWeight float64
	// LevelHours is how many recent hours set the level correction.
	LevelHours int
	// Decay is the fraction of the level correction kept per hour of lead.
	Decay float64
	// Floor is the fraction of the correction kept however long the lead
	// (a slow level shift, e.g. a windy week, persists).
	Floor float64
}

// DefaultParams are the tuned defaults of MethodProfile.
// They were picked by a grid search on 2022 origins over five zones
// (TestTuneForecaster); the optimum is flat, a week's weight did not help.
var DefaultParams = Params{Days: 14, WeekWeight: 0, LevelHours: 1, Decay: 0.95, Floor: 0.2}

// Forecast predicts [from, from+horizon) from history, using only points
// that end at or before from. The result's points have kind estimate and
// inherit history's signal, region and zone; IssuedAt is from. Without any
// usable history the result has no points.
func (f Forecaster) Forecast(history Series, from time.Time, horizon time.Duration) Series {
	step := f.Step
	if step <= 0 {
		step = time.Hour
	}
	past := history.Slice(time.Time{}, from)
	for len(past.Points) > 0 && past.Points[len(past.Points)-1].End.After(from) {
		past.Points = past.Points[:len(past.Points)-1]
	}
	out := Series{Region: history.Region, Zone: history.Zone, Source: "greenq-forecaster", Signal: history.Signal, IssuedAt: from}
	if len(past.Points) == 0 {
		return out
	}
	m := model{past: past, step: step, from: from, last: past.Points[len(past.Points)-1].GCO2PerKWh}
	method := f.Method
	if method == "" {
		method = MethodProfile
	}
	p := DefaultParams
	if f.Params != nil {
		p = *f.Params
	}
	var level float64
	if method == MethodProfile {
		level = m.level(p)
	}
	for t := from; t.Before(from.Add(horizon)); t = t.Add(step) {
		var v float64
		switch method {
		case MethodSeasonalDay:
			v = m.lag(t, 24*time.Hour)
		case MethodSeasonalWeek:
			v = m.lag(t, 7*24*time.Hour)
		default:
			lead := t.Sub(from).Hours() + step.Hours()/2
			keep := p.Floor + (1-p.Floor)*math.Pow(p.Decay, lead)
			v = math.Max(0, m.base(t, p)+level*keep)
		}
		out.Points = append(out.Points, Point{Start: t, End: t.Add(step), GCO2PerKWh: v, Kind: KindEstimate})
	}
	return out
}

// model holds one forecast's inputs.
type model struct {
	past Series
	step time.Duration
	from time.Time
	last float64
}

// lag returns the mean over [t, t+step) shifted back by whole periods until
// it lies in the past; the last value when history has nothing there.
func (m model) lag(t time.Time, period time.Duration) float64 {
	back := t.Add(-period)
	for back.Add(m.step).After(m.from) {
		back = back.Add(-period)
	}
	if v, cov := m.past.Mean(back, back.Add(m.step)); cov > 0 {
		return v
	}
	return m.last
}

// profile returns the mean of [t, t+step) over the n most recent days that
// lie wholly in the past and are covered by history.
func (m model) profile(t time.Time, n int) (float64, bool) {
	back := t.Add(-24 * time.Hour)
	for back.Add(m.step).After(m.from) {
		back = back.Add(-24 * time.Hour)
	}
	var sum float64
	var k int
	for i := 0; i < n; i++ {
		if v, cov := m.past.Mean(back, back.Add(m.step)); cov > 0 {
			sum += v
			k++
		}
		back = back.Add(-24 * time.Hour)
	}
	if k == 0 {
		return 0, false
	}
	return sum / float64(k), true
}

// base is the seasonal part of MethodProfile at t.
func (m model) base(t time.Time, p Params) float64 {
	days := max(p.Days, 1)
	prof, ok := m.profile(t, days)
	if !ok {
		return m.last
	}
	if p.WeekWeight <= 0 {
		return prof
	}
	back := t.Add(-7 * 24 * time.Hour)
	for back.Add(m.step).After(m.from) {
		back = back.Add(-7 * 24 * time.Hour)
	}
	w, cov := m.past.Mean(back, back.Add(m.step))
	if cov == 0 {
		return prof
	}
	return (1-p.WeekWeight)*prof + p.WeekWeight*w
}

// level is the mean residual (actual − base) over the last LevelHours, the
// base computed as it would have been forecast at the origin.
func (m model) level(p Params) float64 {
	if p.LevelHours <= 0 {
		return 0
	}
	var sum float64
	var k int
	for i := 1; i <= p.LevelHours; i++ {
		t := m.from.Add(-time.Duration(i) * m.step)
		v, cov := m.past.Mean(t, t.Add(m.step))
		if cov == 0 {
			continue
		}
		sum += v - m.base(t, p)
		k++
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}
