package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Signal says what an intensity measures. Average and marginal values are
// never mixed in one series or one total.
type Signal string

// Signals.
const (
	SignalAverage  Signal = "average"  // attributional intensity of the generation mix
	SignalMarginal Signal = "marginal" // marginal operating emissions rate (MOER)
)

// PointKind says where a point came from.
type PointKind string

// Point kinds.
const (
	KindActual   PointKind = "actual"   // measured/published history
	KindForecast PointKind = "forecast" // a provider's forecast
	KindEstimate PointKind = "estimate" // greenq's own forecaster
)

// Point is the intensity over the half-open interval [Start, End).
type Point struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	GCO2PerKWh float64   `json:"gco2_per_kwh"`
	Kind       PointKind `json:"kind"`
}

// Series is one region's normalised carbon signal, as the planner sees it.
// Points are sorted by Start and do not overlap; gaps are allowed.
type Series struct {
	Region   string    `json:"region"`
	Zone     string    `json:"zone"`
	Source   string    `json:"source"`
	Signal   Signal    `json:"signal"`
	IssuedAt time.Time `json:"issued_at"`
	Points   []Point   `json:"points"`
	// Missing lists the parts of the provider's answer that did not arrive
	// while the rest did (say its history call failed but its forecast came
	// back): Points hold what arrived. Empty when the answer was whole.
	Missing []Gap `json:"missing,omitempty"`
}

// Part names one piece of a provider's answer.
type Part string

// Parts of a provider's answer.
const (
	PartHistory  Part = "history"  // actuals before the fetch time
	PartForecast Part = "forecast" // the provider's own forecast
)

// Gap is a part of a fetch that failed while the rest succeeded.
type Gap struct {
	// Part is what is missing.
	Part Part `json:"part"`
	// From and To bound the interval that part was asked for.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Status is the HTTP status the provider answered the part with: 429
	// when rate limited, 0 when the call failed otherwise (a transport
	// error, a malformed payload).
	Status int `json:"status,omitempty"`
	// Reason is the error, for people.
	Reason string `json:"reason"`
	// Err is the error itself, for errors.Is and errors.As; it is not
	// serialised.
	Err error `json:"-"`
}

// MissingPart returns the Gap for a part of [from, to) that failed with err,
// its Status taken from a wrapped *StatusError or *RateLimitError.
func MissingPart(part Part, from, to time.Time, err error) Gap {
	g := Gap{Part: part, From: from.UTC(), To: to.UTC(), Err: err}
	if err != nil {
		g.Reason = err.Error()
	}
	var se *StatusError
	var rl *RateLimitError
	switch {
	case errors.As(err, &se):
		g.Status = se.Code
	case errors.As(err, &rl):
		g.Status = 429
	}
	return g
}

// Lacks reports whether the series says part is missing.
func (s Series) Lacks(part Part) bool {
	for _, g := range s.Missing {
		if g.Part == part {
			return true
		}
	}
	return false
}

// Provider fetches a zone's signal over [from, to) from one data source.
// Implementations return points in their native step, converted to
// gCO2e/kWh, and wrap transport errors with %w.
type Provider interface {
	Fetch(ctx context.Context, zone string, from, to time.Time) (Series, error)
}

// Validate checks the invariants the planner relies on: a known signal,
// finite non-negative values, End after Start, sorted and non-overlapping.
func (s Series) Validate() error {
	if s.Signal != SignalAverage && s.Signal != SignalMarginal {
		return fmt.Errorf("series %s: signal %q is neither average nor marginal", s.Region, s.Signal)
	}
	for i, p := range s.Points {
		if math.IsNaN(p.GCO2PerKWh) || math.IsInf(p.GCO2PerKWh, 0) || p.GCO2PerKWh < 0 {
			return fmt.Errorf("series %s: point %d (%s): intensity %v is not a finite number ≥ 0", s.Region, i, p.Start.Format(time.RFC3339), p.GCO2PerKWh)
		}
		if !p.End.After(p.Start) {
			return fmt.Errorf("series %s: point %d (%s): end is not after start", s.Region, i, p.Start.Format(time.RFC3339))
		}
		if i > 0 && p.Start.Before(s.Points[i-1].End) {
			return fmt.Errorf("series %s: point %d (%s) overlaps the one before", s.Region, i, p.Start.Format(time.RFC3339))
		}
	}
	return nil
}

// End returns the end of the last point (zero time for an empty series).
func (s Series) End() time.Time {
	if len(s.Points) == 0 {
		return time.Time{}
	}
	return s.Points[len(s.Points)-1].End
}

// index returns the index of the first point whose End is after t.
func (s Series) index(t time.Time) int {
	return sort.Search(len(s.Points), func(i int) bool { return s.Points[i].End.After(t) })
}

// At returns the point covering t.
func (s Series) At(t time.Time) (Point, bool) {
	i := s.index(t)
	if i < len(s.Points) && !s.Points[i].Start.After(t) {
		return s.Points[i], true
	}
	return Point{}, false
}

// Mean returns the time-weighted mean intensity over [from, to) and the
// duration of that interval the series covers. Uncovered time is ignored;
// covered == 0 means the series says nothing about the interval.
func (s Series) Mean(from, to time.Time) (mean float64, covered time.Duration) {
	var sum float64
	for i := s.index(from); i < len(s.Points) && s.Points[i].Start.Before(to); i++ {
		p := s.Points[i]
		a, b := maxTime(p.Start, from), minTime(p.End, to)
		if b.After(a) {
			d := b.Sub(a)
			covered += d
			sum += p.GCO2PerKWh * d.Seconds()
		}
	}
	if covered == 0 {
		return 0, 0
	}
	return sum / covered.Seconds(), covered
}

// Slice returns the points overlapping [from, to), unclipped.
func (s Series) Slice(from, to time.Time) Series {
	out := s
	i := s.index(from)
	j := i
	for j < len(s.Points) && s.Points[j].Start.Before(to) {
		j++
	}
	out.Points = s.Points[i:j:j]
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
