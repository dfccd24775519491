package forecast

import (
	"math"
	"time"
)

// Method names one of the forecaster's models.
type Method string

// Methods. MethodProfile is the default: it measured best on greenq's
// benchmark data (see BenchmarkTableForecaster and BENCHMARKS.md).
// MethodRegression has a lower error over the first 6 h (e.g. DE-LU 2022,
// 1 h ahead: 7.6 against 10.4 gCO2e/kWh), but in the back-test on 2023 its
// decisions captured no more of the oracle's savings (one region 0.785
// against 0.781, Let's Wait Awhile 0.603 against 0.609) at twice the cost,
// so it is not the default.
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
	// MethodRegression is MethodProfile's seasonal part plus a deviation
	// predicted per lead by a linear model of the recent deviations (lags
	// 1 and 2 steps, and the target's hour one day and one week earlier),
	// fitted by least squares on the last Params.FitDays of history at
	// each forecast.
	MethodRegression Method = "regression"
)

// Forecaster is greenq's own forecaster: it predicts a region's intensity
// from its past alone, for horizons no provider covers, regions with history
// only, and as the fallback when a provider is down.
type Forecaster struct {
	// Step is the width of the model's slots and of each predicted point,
	// unless history is finer (see Forecast). Default 1h.
	Step time.Duration
	// Method picks the model. Default MethodProfile.
	Method Method
	// Params tunes MethodProfile and MethodRegression; the zero value
	// means DefaultParams.
	Params *Params
}

// Params tunes MethodProfile and MethodRegression.
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
	// FitDays is how many days of history MethodRegression fits on.
	// 0 means 21.
	FitDays int
}

// DefaultParams are the tuned defaults of MethodProfile.
// They were picked by a grid search on 2022 origins over five zones
// (BenchmarkTuneForecaster); the optimum is flat, a week's weight did not help.
var DefaultParams = Params{Days: 14, WeekWeight: 0, LevelHours: 1, Decay: 0.95, Floor: 0.2}

// Forecast predicts [from, from+horizon) from history, using only points
// that end at or before from. The model works in Step-wide slots; where
// history's points are finer (WattTime's 5 minutes, NESO's 30), the result
// is at history's resolution, a line through the slots' values (profile
// and regression methods). The result's points have kind estimate and
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
	method := f.Method
	if method == "" {
		method = MethodProfile
	}
	p := DefaultParams
	if f.Params != nil {
		p = *f.Params
	}
	if p.FitDays <= 0 {
		p.FitDays = 21
	}
	m := newModel(past, step, from, method, p)
	leads := int((horizon + step - 1) / step)
	var level float64
	var reg *regression
	switch method {
	case MethodProfile:
		level = m.level(p)
		p = m.shortHistory(p)
	case MethodRegression:
		level = m.level(p)
		reg = m.fit(p, min(leads, int(time.Duration(regFull+regFade)*time.Hour/step)+1))
	}
	vals := make([]float64, 0, leads+1)
	for j := 0; j <= leads; j++ {
		vals = append(vals, f.value(m, method, p, level, reg, j, step))
	}
	if res := max(resolution(past), step/finePerStep); res < step && step%res == 0 && method != MethodSeasonalDay && method != MethodSeasonalWeek {
		out.Points = fine(past, from, horizon, step, res, vals)
		return out
	}
	out.Points = make([]Point, 0, leads)
	for j := 0; j < leads; j++ {
		t := from.Add(time.Duration(j) * step)
		out.Points = append(out.Points, Point{Start: t, End: t.Add(step), GCO2PerKWh: vals[j], Kind: KindEstimate})
	}
	return out
}

// value is the model's prediction for lead slot j.
func (f Forecaster) value(m *model, method Method, p Params, level float64, reg *regression, j int, step time.Duration) float64 {
	switch method {
	case MethodSeasonalDay:
		return m.lag(j, m.day)
	case MethodSeasonalWeek:
		return m.lag(j, 7*m.day)
	}
	lead := float64(j)*step.Hours() + step.Hours()/2
	keep := p.Floor + (1-p.Floor)*math.Pow(p.Decay, lead)
	dev := level * keep
	if reg != nil {
		// The fitted model wins at short leads; further out the fixed
		// fading level is steadier, so hand over to it.
		w := min(1, max(0, (regFull+regFade-lead)/regFade))
		if w > 0 {
			dev = w*reg.predict(m, j) + (1-w)*dev
		}
	}
	return math.Max(0, m.base(j, p)+dev)
}

// finePerStep bounds the points a fine forecast has per model step (5
// minutes for hourly steps): finer history, such as seconds-wide test
// slots, would make a long horizon's series huge for no better decision.
const finePerStep = 12

// resolution is the width of history's last point: the resolution the
// signal is published at.
func resolution(past Series) time.Duration {
	last := past.Points[len(past.Points)-1]
	return last.End.Sub(last.Start)
}

// fine returns the forecast at the history's own resolution res, finer
// than the model's step: a line from the last known value through each
// step's value at the step's middle. A step function would tell the
// planner that every start inside an hour costs the same, when the signal
// moves within it toward the next hour's level. Measured with the own
// forecaster on 2023 history: WattTime's 5-minute MOER (BenchmarkVintages)
// 0.263 of the oracle's savings against 0.231; Let's Wait Awhile scenario
// I (30-minute data), GB ±2 h 2.40 % against 1.94 %, DE ±2 h −0.07 %
// against 0.26 %, every row still above the reference.
func fine(past Series, from time.Time, horizon, step, res time.Duration, vals []float64) []Point {
	last := past.Points[len(past.Points)-1]
	x0 := float64(last.Start.Add(res / 2).Sub(from))
	y0 := last.GCO2PerKWh
	n := int((horizon + res - 1) / res)
	pts := make([]Point, 0, n)
	j := 0
	for i := 0; i < n; i++ {
		t := from.Add(time.Duration(i) * res)
		c := float64(t.Add(res / 2).Sub(from))
		for j < len(vals) && float64(time.Duration(j)*step+step/2) <= c {
			j++
		}
		var v float64
		switch {
		case j >= len(vals):
			v = vals[len(vals)-1]
		default:
			xa, ya := x0, y0
			if j > 0 {
				xa, ya = float64(time.Duration(j-1)*step+step/2), vals[j-1]
			}
			xb := float64(time.Duration(j)*step + step/2)
			v = ya + (vals[j]-ya)*(c-xa)/(xb-xa)
		}
		pts = append(pts, Point{Start: t, End: t.Add(res), GCO2PerKWh: math.Max(0, v), Kind: KindEstimate})
	}
	return pts
}

// model holds one forecast's inputs on a grid of steps ending at the
// origin: v[i] is the mean over [from−(n−i)·step, from−(n−i−1)·step), NaN
// where history says nothing. Slot n+j is lead slot j (j ≥ 0 is future).
type model struct {
	v    []float64
	n    int
	day  int // slots per day
	last float64
	// flat is the mean of the last Params.Days of history: the seasonal
	// part of an hour of day the history has not seen yet (a region with
	// less than a day of history), where repeating the last value would
	// forecast no difference between hours at all.
	flat float64
}

func newModel(past Series, step time.Duration, from time.Time, method Method, p Params) *model {
	day := max(1, int((24*time.Hour+step/2)/step))
	days := 8 // a week's lag and one step more
	switch method {
	case MethodProfile:
		days = max(days, max(p.Days, 1)+8)
	case MethodRegression:
		days = max(days, max(p.Days, 1)+p.FitDays+10)
	}
	n := int((from.Sub(past.Points[0].Start) + step - 1) / step)
	n = max(1, min(n, days*day))
	m := &model{v: make([]float64, n), n: n, day: day, last: past.Points[len(past.Points)-1].GCO2PerKWh}
	for i := range m.v {
		a := from.Add(-time.Duration(n-i) * step)
		if v, cov := past.Mean(a, a.Add(step)); cov > 0 {
			m.v[i] = v
		} else {
			m.v[i] = math.NaN()
		}
	}
	m.flat = m.last
	var sum float64
	var k int
	for i := max(0, n-max(p.Days, 1)*day); i < n; i++ {
		if v := m.v[i]; !math.IsNaN(v) {
			sum += v
			k++
		}
	}
	if k > 0 {
		m.flat = sum / float64(k)
	}
	return m
}

// at returns slot i's value, NaN outside the history.
func (m *model) at(i int) float64 {
	if i < 0 || i >= m.n {
		return math.NaN()
	}
	return m.v[i]
}

// back returns the latest past slot index at lead slot j shifted back by
// whole periods.
func (m *model) back(j, period int) int {
	b := j - period
	for b >= 0 {
		b -= period
	}
	return m.n + b
}

// lag returns the value at lead slot j shifted back by whole periods into
// the past; the last value when history has nothing there.
func (m *model) lag(j, period int) float64 {
	if v := m.at(m.back(j, period)); !math.IsNaN(v) {
		return v
	}
	return m.last
}

// profile returns the mean of slot i and the n−1 slots at the same hour on
// the days before it, over those history covers.
func (m *model) profile(i, n int) (float64, bool) {
	var sum float64
	var k int
	for d := 0; d < n && i >= 0; d, i = d+1, i-m.day {
		if v := m.at(i); !math.IsNaN(v) {
			sum += v
			k++
		}
	}
	if k == 0 {
		return 0, false
	}
	return sum / float64(k), true
}

// base is the seasonal part at lead slot j (j < 0: a past slot, as it
// would have been forecast at the origin).
func (m *model) base(j int, p Params) float64 {
	prof, ok := m.profile(m.back(j, m.day), max(p.Days, 1))
	if !ok {
		return m.flat
	}
	if p.WeekWeight <= 0 {
		return prof
	}
	w := m.at(m.back(j, 7*m.day))
	if math.IsNaN(w) {
		return prof
	}
	return (1-p.WeekWeight)*prof + p.WeekWeight*w
}

// level is the mean residual (actual − base) over the last LevelHours, the
// base computed as it would have been forecast at the origin.
func (m *model) level(p Params) float64 {
	if p.LevelHours <= 0 {
		return 0
	}
	var sum float64
	var k int
	for i := 1; i <= p.LevelHours; i++ {
		v := m.at(m.n - i)
		if math.IsNaN(v) {
			continue
		}
		sum += v - m.base(-i, p)
		k++
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}

// shortHistory returns p for a history shorter than p.Days: the profile
// then averages only k < Days days, so more of the latest deviation is the
// profile's own noise and less of it lasts: the floor scales by k/Days.
// (With a day of history and the default floor, GB's NESO days of
// BenchmarkVintages captured 0.10 of the oracle's savings, scaled 0.34;
// raising the decay too, to the power Days/k, gained nothing more.)
func (m *model) shortHistory(p Params) Params {
	days := max(p.Days, 1)
	k := min(days, m.n/m.day)
	if k >= days {
		return p
	}
	k = max(k, 1)
	p.Floor *= float64(k) / float64(days)
	return p
}

// MethodRegression uses its fitted model up to regFull hours of lead and
// hands over to MethodProfile's fading level over the next regFade hours.
var regFull, regFade = 6.0, 6.0

// regFeatures is the number of regression inputs: a constant, the
// deviations of the last two slots before the origin, and those of the
// target's slot one day and one week earlier.
const regFeatures = 5

// regression holds the per-lead coefficients of MethodRegression.
type regression struct {
	leads []int // fitted lead slots, ascending
	coef  [][regFeatures]float64
	dev   []float64 // dev[i] is slot i's deviation from its trailing profile, 0 where unknown
}

// fitLeads are the lead slots (0-based) fitted; leads between are
// interpolated, leads beyond the last use the last.
var fitLeads = []int{0, 1, 2, 3, 5, 7, 11, 15, 19, 23, 29, 35, 47, 71}

// features fills x for origin slot o and target slot o+j.
func (r *regression) features(m *model, o, j int, x *[regFeatures]float64) {
	d := func(i int) float64 {
		if i < 0 || i >= len(r.dev) {
			return 0
		}
		return r.dev[i]
	}
	tday := o + j - m.day
	for tday >= o {
		tday -= m.day
	}
	tweek := o + j - 7*m.day
	for tweek >= o {
		tweek -= 7 * m.day
	}
	*x = [regFeatures]float64{1, d(o - 1), d(o - 2), d(tday), d(tweek)}
}

// fit fits the per-lead models on origins in the last FitDays; nil when
// history is too short.
func (m *model) fit(p Params, leads int) *regression {
	days := max(p.Days, 1)
	r := &regression{dev: make([]float64, m.n)}
	// tp[i] is slot i's trailing profile (the days before it), NaN where
	// history has none; dev is the deviation from it.
	tp := make([]float64, m.n)
	for i := range r.dev {
		tp[i] = math.NaN()
		if prof, ok := m.profile(i-m.day, days); ok {
			tp[i] = prof
			if v := m.v[i]; !math.IsNaN(v) {
				r.dev[i] = v - prof
			}
		}
	}
	first := max(m.day+2, m.n-p.FitDays*m.day)
	var x [regFeatures]float64
	for _, j := range fitLeads {
		if len(r.leads) > 0 && r.leads[len(r.leads)-1] >= leads-1 {
			break
		}
		var a [regFeatures][regFeatures]float64
		var b [regFeatures]float64
		rows := 0
		for o := first; o+j < m.n; o++ {
			y := m.v[o+j]
			if math.IsNaN(y) || math.IsNaN(m.v[o-1]) {
				continue
			}
			// The target deviation is taken against the seasonal part as
			// it would have been forecast at o.
			var prof float64
			if j < m.day {
				if prof = tp[o+j]; math.IsNaN(prof) {
					continue
				}
			} else {
				var ok bool
				if prof, ok = m.profile(m.backFrom(o, o+j), days); !ok {
					continue
				}
			}
			r.features(m, o, j, &x)
			y -= prof
			for u := 0; u < regFeatures; u++ {
				b[u] += x[u] * y
				for w := u; w < regFeatures; w++ {
					a[u][w] += x[u] * x[w]
				}
			}
			rows++
		}
		if rows < 4*24 {
			if len(r.leads) == 0 {
				return nil
			}
			break
		}
		c, ok := solveRidge(a, b, float64(rows))
		if !ok {
			if len(r.leads) == 0 {
				return nil
			}
			break
		}
		r.leads = append(r.leads, j)
		r.coef = append(r.coef, c)
	}
	return r
}

// backFrom returns target slot t shifted back by whole days to before
// origin slot o.
func (m *model) backFrom(o, t int) int {
	b := t - m.day
	for b >= o {
		b -= m.day
	}
	return b
}

// predict returns the deviation forecast at lead slot j.
func (r *regression) predict(m *model, j int) float64 {
	var x [regFeatures]float64
	r.features(m, m.n, j, &x)
	k := 0
	for k+1 < len(r.leads) && r.leads[k+1] <= j {
		k++
	}
	c := r.coef[k]
	if k+1 < len(r.leads) && j > r.leads[k] {
		w := float64(j-r.leads[k]) / float64(r.leads[k+1]-r.leads[k])
		for u := range c {
			c[u] = (1-w)*c[u] + w*r.coef[k+1][u]
		}
	}
	var y float64
	for u := range c {
		y += c[u] * x[u]
	}
	return y
}

// solveRidge solves (A + λI)c = b for symmetric A given by its upper
// triangle, with a small ridge λ (not on the constant) for stability.
func solveRidge(a [regFeatures][regFeatures]float64, b [regFeatures]float64, rows float64) ([regFeatures]float64, bool) {
	var c [regFeatures]float64
	for u := 0; u < regFeatures; u++ {
		for w := 0; w < u; w++ {
			a[u][w] = a[w][u]
		}
	}
	var tr float64
	for u := 1; u < regFeatures; u++ {
		tr += a[u][u]
	}
	lam := 1e-3*tr/float64(regFeatures-1) + 1e-9*rows
	for u := 1; u < regFeatures; u++ {
		a[u][u] += lam
	}
	// Gaussian elimination with partial pivoting.
	for col := 0; col < regFeatures; col++ {
		piv := col
		for r := col + 1; r < regFeatures; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-12 {
			return c, false
		}
		a[col], a[piv] = a[piv], a[col]
		b[col], b[piv] = b[piv], b[col]
		for r := col + 1; r < regFeatures; r++ {
			f := a[r][col] / a[col][col]
			for w := col; w < regFeatures; w++ {
				a[r][w] -= f * a[col][w]
			}
			b[r] -= f * b[col]
		}
	}
	for u := regFeatures - 1; u >= 0; u-- {
		s := b[u]
		for w := u + 1; w < regFeatures; w++ {
			s -= a[u][w] * c[w]
		}
		c[u] = s / a[u][u]
	}
	return c, true
}
