package backtest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
)

// valueAt looks a minute up in the points directly (first and last values
// extend past the ends), independently of stepFn.
func valueAt(pts []forecast.Point, t time.Time) float64 {
	if t.Before(pts[0].Start) {
		return pts[0].GCO2PerKWh
	}
	for _, p := range pts {
		if !t.Before(p.Start) && t.Before(p.End) {
			return p.GCO2PerKWh
		}
	}
	return pts[len(pts)-1].GCO2PerKWh
}

// TestOracleProperties checks, on small random instances whose breakpoints
// all fall on whole minutes (so the continuous optimum does too), that the
// oracle equals a brute force over every minute, and that it is no worse
// than greenq, the reference policy and now, whose placements keep every
// invariant.
func TestOracleProperties(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		nReg := rapid.IntRange(1, 3).Draw(rt, "regions")
		carbon := map[string]forecast.Series{}
		var names []string
		for r := range nReg {
			name := fmt.Sprintf("r%d", r)
			names = append(names, name)
			at := t0.Add(time.Duration(rapid.IntRange(-60, 60).Draw(rt, "offset")) * time.Minute)
			var pts []forecast.Point
			for range rapid.IntRange(1, 12).Draw(rt, "pieces") {
				d := time.Duration(rapid.IntRange(1, 90).Draw(rt, "step")) * time.Minute
				pts = append(pts, forecast.Point{Start: at, End: at.Add(d), GCO2PerKWh: float64(rapid.IntRange(0, 500).Draw(rt, "v")), Kind: forecast.KindActual})
				at = at.Add(d)
			}
			carbon[name] = forecast.Series{Region: name, Signal: forecast.SignalAverage, Points: pts}
		}
		var jobs []Job
		for k := range rapid.IntRange(1, 5).Draw(rt, "jobs") {
			submit := t0.Add(time.Duration(rapid.IntRange(0, 240).Draw(rt, "submit")) * time.Minute)
			dur := time.Duration(rapid.IntRange(1, 150).Draw(rt, "dur")) * time.Minute
			slack := time.Duration(rapid.IntRange(-20, 300).Draw(rt, "slack")) * time.Minute
			dl := submit.Add(max(0, dur+slack))
			var regs []string
			for _, n := range names {
				if rapid.Bool().Draw(rt, "allow") {
					regs = append(regs, n)
				}
			}
			jobs = append(jobs, Job{ID: fmt.Sprintf("j%d", k), Submit: submit, Duration: dur, Deadline: dl,
				GPUs: rapid.IntRange(1, 3).Draw(rt, "gpus"), PowerW: float64(rapid.IntRange(100, 700).Draw(rt, "power")),
				Interruptible: rapid.Bool().Draw(rt, "interruptible"), Regions: regs})
		}
		cfg := Config{Carbon: carbon, Jobs: jobs, Clock: fixedClock, Planner: policy.Config{Slot: 5 * time.Minute}}
		if rapid.Bool().Draw(rt, "pue") {
			cfg.PUE = map[string]float64{names[0]: 1.25}
		}
		res, err := Run(context.Background(), cfg, nil)
		require.NoError(rt, err)
		slices.Sort(names)
		checkPlacements(rt, jobs, res.Placements, names)
		checkPlacements(rt, jobs, res.ReferencePlacements, names)

		var brute float64
		for _, j := range jobs {
			allowed := j.Regions
			if len(allowed) == 0 {
				allowed = names
			}
			mins := int(j.Duration / time.Minute)
			best := math.Inf(1)
			for _, r := range allowed {
				pue := 1.0
				if p, ok := cfg.PUE[r]; ok {
					pue = p
				}
				kwhPerMin := float64(j.GPUs) * j.PowerW / 1000 / 60 * pue
				pts := carbon[r].Points
				window := int(j.Deadline.Sub(j.Submit) / time.Minute)
				cost := func(startMin int) float64 {
					var c float64
					for m := startMin; m < startMin+mins; m++ {
						c += valueAt(pts, j.Submit.Add(time.Duration(m)*time.Minute)) * kwhPerMin
					}
					return c
				}
				switch {
				case window < mins:
					best = min(best, cost(0))
				case j.Interruptible && window > mins:
					var cells []float64
					for m := range window {
						cells = append(cells, valueAt(pts, j.Submit.Add(time.Duration(m)*time.Minute))*kwhPerMin)
					}
					slices.Sort(cells)
					var c float64
					for _, x := range cells[:mins] {
						c += x
					}
					best = min(best, c)
				default:
					for s := 0; s+mins <= window; s++ {
						best = min(best, cost(s))
					}
				}
			}
			brute += best
		}
		p := res.Policies
		tol := 1e-9 * max(1, brute)
		require.InDelta(rt, brute, p.Oracle.GCO2, tol, "oracle is not the brute-force optimum")
		require.LessOrEqual(rt, p.Oracle.GCO2, p.GreenQ.GCO2+tol)
		require.LessOrEqual(rt, p.Oracle.GCO2, p.Now.GCO2+tol)
		require.LessOrEqual(rt, p.Oracle.DeadlineMisses, p.GreenQ.DeadlineMisses)
		require.LessOrEqual(rt, p.Oracle.GCO2, p.Reference.GCO2+tol)
		require.LessOrEqual(rt, p.Oracle.DeadlineMisses, p.Reference.DeadlineMisses)
	})
}
