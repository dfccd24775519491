package forecast

import (
	"math"
	"time"
)

// ForecastFunc predicts [from, from+horizon) from history. Evaluations hand
// it only the history that ends by from.
type ForecastFunc func(history Series, from time.Time, horizon time.Duration) Series

// LeadMAE is a mean absolute error (gCO2e/kWh) by lead hour: MAE[h-1] scores
// the hour [origin+(h-1)h, origin+h h); N[h-1] counts the scored hours, and
// Mean[h-1] is the mean actual over them (to read MAE relative to level).
type LeadMAE struct {
	MAE  []float64
	N    []int
	Mean []float64
}

// At returns the MAE at lead hour h (1-based), NaN when nothing was scored.
func (l LeadMAE) At(h int) float64 {
	if h < 1 || h > len(l.MAE) || l.N[h-1] == 0 {
		return math.NaN()
	}
	return l.MAE[h-1]
}

// Avg returns the MAE over lead hours 1..h, weighting every scored hour alike.
func (l LeadMAE) Avg(h int) float64 {
	var sum float64
	var n int
	for i := 0; i < h && i < len(l.MAE); i++ {
		sum += l.MAE[i] * float64(l.N[i])
		n += l.N[i]
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func newLeadMAE(leads int) LeadMAE {
	return LeadMAE{MAE: make([]float64, leads), N: make([]int, leads), Mean: make([]float64, leads)}
}

func (l *LeadMAE) add(h int, forecast, actual float64) {
	l.MAE[h] += math.Abs(forecast - actual)
	l.Mean[h] += actual
	l.N[h]++
}

func (l *LeadMAE) finish() {
	for i := range l.MAE {
		if l.N[i] > 0 {
			l.MAE[i] /= float64(l.N[i])
			l.Mean[i] /= float64(l.N[i])
		}
	}
}

// EvaluateMAE scores f from each origin over leads hours against actual.
// f sees only actual's points that end by the origin; an hour counts only
// where both forecast and actual cover it whole.
func EvaluateMAE(actual Series, f ForecastFunc, origins []time.Time, leads int) LeadMAE {
	out := newLeadMAE(leads)
	for _, o := range origins {
		hist := actual.Slice(time.Time{}, o)
		for len(hist.Points) > 0 && hist.Points[len(hist.Points)-1].End.After(o) {
			hist.Points = hist.Points[:len(hist.Points)-1]
		}
		fc := f(hist, o, time.Duration(leads)*time.Hour)
		for h := 0; h < leads; h++ {
			a, b := o.Add(time.Duration(h)*time.Hour), o.Add(time.Duration(h+1)*time.Hour)
			fv, fcov := fc.Mean(a, b)
			av, acov := actual.Mean(a, b)
			if fcov == time.Hour && acov == time.Hour {
				out.add(h, fv, av)
			}
		}
	}
	out.finish()
	return out
}

// Vintage is a forecast as it was issued.
type Vintage struct {
	Issued time.Time
	Series Series
}

// EvaluateVintages scores real forecast vintages against actual point by
// point at their own step: a point starting d after issue counts at lead hour
// ⌊d/1h⌋+1 (points starting up to one step before issue count at hour 1).
func EvaluateVintages(vintages []Vintage, actual Series, leads int) LeadMAE {
	out := newLeadMAE(leads)
	for _, v := range vintages {
		for _, p := range v.Series.Points {
			d := p.Start.Sub(v.Issued)
			h := 0
			if d > 0 {
				h = int(d / time.Hour)
			}
			if h >= leads {
				continue
			}
			av, acov := actual.Mean(p.Start, p.End)
			if acov == p.End.Sub(p.Start) {
				out.add(h, p.GCO2PerKWh, av)
			}
		}
	}
	out.finish()
	return out
}
