package forecast

import "time"

// Forecaster is greenq's own forecaster: it predicts a region's intensity
// from its past alone, for horizons no provider covers, regions with history
// only, and as the fallback when a provider is down.
type Forecaster struct {
	// Step is the width of each predicted point. Default 1h.
	Step time.Duration
}

// Forecast predicts [from, from+horizon) from history, using only points
// that end at or before from. The result's points have kind estimate and
// inherit history's signal, region and zone; IssuedAt is from.
//
// This first version is seasonal naive by day: each step repeats the value
// 24 h earlier (or the last known value when that is missing).
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
	last := past.Points[len(past.Points)-1].GCO2PerKWh
	for t := from; t.Before(from.Add(horizon)); t = t.Add(step) {
		v := last
		back := t.Add(-24 * time.Hour)
		for back.Add(step).After(from) {
			back = back.Add(-24 * time.Hour)
		}
		if m, cov := past.Mean(back, back.Add(step)); cov > 0 {
			v = m
		}
		out.Points = append(out.Points, Point{Start: t, End: t.Add(step), GCO2PerKWh: v, Kind: KindEstimate})
	}
	return out
}
