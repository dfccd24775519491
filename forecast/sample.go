package forecast

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Sample is one value as a provider publishes it: a start time, optionally a
// duration, and the value already converted to gCO2e/kWh.
type Sample struct {
	Start    time.Time
	Duration time.Duration // 0 when the provider does not say
	Value    float64
	Kind     PointKind
}

// BuildPoints turns samples into the points of a Series: sorted by start, a
// repeated start kept once (the first given wins, so callers list the
// preferred source first), each point ending where the next starts or after
// its own duration, whichever is sooner. A point without a duration that is
// last, or followed by a gap wider than twice the median step, gets the
// median step (defaultStep when there is only one sample). Values must be
// finite and ≥ 0; otherwise the error wraps ErrBadPayload.
func BuildPoints(samples []Sample, defaultStep time.Duration) ([]Point, error) {
	if len(samples) == 0 {
		return nil, nil
	}
	for i, s := range samples {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
			return nil, fmt.Errorf("sample %d (%s): value %v: %w", i, s.Start.Format(time.RFC3339), s.Value, ErrBadPayload)
		}
		if s.Start.IsZero() {
			return nil, fmt.Errorf("sample %d: missing time: %w", i, ErrBadPayload)
		}
		if s.Duration < 0 {
			return nil, fmt.Errorf("sample %d: negative duration: %w", i, ErrBadPayload)
		}
	}
	sorted := slices.Clone(samples)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	uniq := sorted[:1]
	for _, s := range sorted[1:] {
		if !s.Start.Equal(uniq[len(uniq)-1].Start) {
			uniq = append(uniq, s)
		}
	}
	step := MedianStep(uniq, defaultStep)
	out := make([]Point, 0, len(uniq))
	for i, s := range uniq {
		end := s.Start.Add(step)
		if s.Duration > 0 {
			end = s.Start.Add(s.Duration)
		} else if i+1 < len(uniq) {
			if gap := uniq[i+1].Start.Sub(s.Start); gap <= 2*step {
				end = uniq[i+1].Start
			}
		}
		if i+1 < len(uniq) && end.After(uniq[i+1].Start) {
			end = uniq[i+1].Start
		}
		kind := s.Kind
		if kind == "" {
			kind = KindForecast
		}
		out = append(out, Point{Start: s.Start.UTC(), End: end.UTC(), GCO2PerKWh: s.Value, Kind: kind})
	}
	return out, nil
}

// MedianStep returns the median distance between consecutive sample starts
// (samples sorted by start), or def when there are fewer than two.
func MedianStep(samples []Sample, def time.Duration) time.Duration {
	if len(samples) < 2 {
		if def <= 0 {
			return time.Hour
		}
		return def
	}
	d := make([]time.Duration, 0, len(samples)-1)
	for i := 1; i < len(samples); i++ {
		if g := samples[i].Start.Sub(samples[i-1].Start); g > 0 {
			d = append(d, g)
		}
	}
	if len(d) == 0 {
		return def
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// Splice returns base followed by the points of ext that start at or after
// base's end, so a provider's series keeps its own points and ext (e.g. the
// own forecaster's estimates) only extends it.
func Splice(base Series, ext []Point) Series {
	out := base
	out.Points = slices.Clone(base.Points)
	end := base.End()
	for _, p := range ext {
		if !p.Start.Before(end) {
			out.Points = append(out.Points, p)
		}
	}
	return out
}
