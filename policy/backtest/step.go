package backtest

import (
	"sort"
	"time"

	"github.com/greenq/greenq/forecast"
)

// stepFn is a region's actual series as a step function over all time:
// piece i holds v[i] on [t[i], t[i+1]); a gap between points belongs to the
// piece before it, and the first and last values extend to ±∞. Times are
// Unix nanoseconds; cum holds the integral from t[0] in value·seconds.
type stepFn struct {
	t   []int64
	v   []float64
	cum []float64
}

func newStepFn(s forecast.Series) *stepFn {
	n := len(s.Points)
	f := &stepFn{t: make([]int64, n+1), v: make([]float64, n), cum: make([]float64, n+1)}
	for i, p := range s.Points {
		f.t[i] = p.Start.UnixNano()
		f.v[i] = p.GCO2PerKWh
	}
	f.t[n] = s.Points[n-1].End.UnixNano()
	for i := range n {
		f.cum[i+1] = f.cum[i] + f.v[i]*float64(f.t[i+1]-f.t[i])/1e9
	}
	return f
}

// piece returns the index of the piece covering x (clamped to the ends).
func (f *stepFn) piece(x int64) int {
	i := sort.Search(len(f.t), func(k int) bool { return f.t[k] > x }) - 1
	return min(max(i, 0), len(f.v)-1)
}

// prim is the integral from t[0] to x (negative before t[0]).
func (f *stepFn) prim(x int64) float64 {
	n := len(f.v)
	switch {
	case x <= f.t[0]:
		return f.v[0] * float64(x-f.t[0]) / 1e9
	case x >= f.t[n]:
		return f.cum[n] + f.v[n-1]*float64(x-f.t[n])/1e9
	}
	i := f.piece(x)
	return f.cum[i] + f.v[i]*float64(x-f.t[i])/1e9
}

// integral returns ∫ over [a, b) in value·seconds.
func (f *stepFn) integral(a, b int64) float64 {
	if b <= a {
		return 0
	}
	return f.prim(b) - f.prim(a)
}

// mean returns the mean value over [a, b).
func (f *stepFn) mean(a, b int64) float64 {
	if b <= a {
		return f.v[f.piece(a)]
	}
	return f.integral(a, b) / (float64(b-a) / 1e9)
}

func ns(t time.Time) int64 { return t.UnixNano() }

func fromNS(x int64) time.Time { return time.Unix(0, x).UTC() }
