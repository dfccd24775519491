package backtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/greenq/greenq/forecast"
	"github.com/stretchr/testify/require"
)

// exactFirst is greenq's own forecaster with the first Lead of every
// estimate replaced by the actual values: how much of the oracle's savings
// the planner captures when the next Lead hours are known exactly. It
// reads the future, so it exists for benchmarks only.
type exactFirst struct {
	Actual forecast.Series
	Lead   time.Duration
}

func (f exactFirst) Forecast(history forecast.Series, from time.Time, horizon time.Duration) forecast.Series {
	est := forecast.Forecaster{}.Forecast(history, from, horizon)
	until := from.Add(f.Lead)
	for i := range est.Points {
		p := &est.Points[i]
		if !p.Start.Before(until) {
			break
		}
		if v, ok := actualAt(f.Actual, p.Start); ok {
			p.GCO2PerKWh = v
		}
	}
	return est
}

// actualAt returns the value of the point of s covering t.
func actualAt(s forecast.Series, t time.Time) (float64, bool) {
	i := sort.Search(len(s.Points), func(i int) bool { return s.Points[i].End.After(t) })
	if i == len(s.Points) || s.Points[i].Start.After(t) {
		return 0, false
	}
	return s.Points[i].GCO2PerKWh, true
}

// leadError is a forecast error measured on real vintages: the standard
// deviation by lead bucket, relative to the mean actual, and the
// correlation of the errors one hour apart within a vintage.
type leadError struct {
	Bucket time.Duration
	Sigma  []float64 // relative σ per bucket of lead
	Corr   float64   // error correlation between leads 1 h apart
}

// measureLeadError measures vintages against actual.
func measureLeadError(actual forecast.Series, vintages []forecast.Series, bucket time.Duration) leadError {
	var sq []float64
	var n []int
	var sumA float64
	var nA int
	var xy, xx, yy float64
	for _, v := range vintages {
		errs := map[time.Time]float64{}
		for _, p := range v.Points {
			a, ok := actualAt(actual, p.Start)
			if !ok || p.Start.Before(v.IssuedAt) {
				continue
			}
			b := int(p.Start.Sub(v.IssuedAt) / bucket)
			for len(sq) <= b {
				sq, n = append(sq, 0), append(n, 0)
			}
			e := p.GCO2PerKWh - a
			sq[b] += e * e
			n[b]++
			sumA += a
			nA++
			errs[p.Start] = e
		}
		for t, e := range errs {
			if e2, ok := errs[t.Add(time.Hour)]; ok {
				xy, xx, yy = xy+e*e2, xx+e*e, yy+e2*e2
			}
		}
	}
	le := leadError{Bucket: bucket, Corr: xy / math.Sqrt(xx*yy)}
	mean := sumA / float64(nA)
	for b := range sq {
		if n[b] == 0 && b > 0 {
			le.Sigma = append(le.Sigma, le.Sigma[b-1]) // no sample at this lead: keep the bucket's place
			continue
		}
		le.Sigma = append(le.Sigma, math.Sqrt(sq[b]/float64(max(n[b], 1)))/mean)
	}
	return le
}

// syntheticForecast is the actual series plus Gaussian error of the size
// and lead-to-lead correlation le measured on real vintages, scaled by the
// mean of the last two weeks of history, drawn afresh at every issue. It
// reads the future, so it exists for benchmarks only.
type syntheticForecast struct {
	Actual forecast.Series
	Error  leadError
	Seed   uint64
}

func (f syntheticForecast) Forecast(history forecast.Series, from time.Time, horizon time.Duration) forecast.Series {
	out := forecast.Series{Region: history.Region, Zone: history.Zone, Source: "synthetic", Signal: history.Signal, IssuedAt: from}
	recent := history.Slice(from.Add(-14*24*time.Hour), from)
	var sum float64
	for _, p := range recent.Points {
		sum += p.GCO2PerKWh
	}
	if len(recent.Points) == 0 {
		return out
	}
	level := sum / float64(len(recent.Points))
	rng := rand.New(rand.NewPCG(f.Seed, uint64(from.Unix())))
	phi := f.Error.Corr
	var e float64
	for t, h := from, 0; t.Before(from.Add(horizon)); t, h = t.Add(time.Hour), h+1 {
		a, ok := actualAt(f.Actual, t)
		if !ok {
			break
		}
		z := rng.NormFloat64()
		if h == 0 {
			e = z
		} else {
			e = phi*e + math.Sqrt(1-phi*phi)*z
		}
		b := min(int(time.Duration(h)*time.Hour/f.Error.Bucket), len(f.Error.Sigma)-1)
		v := math.Max(0, a+e*f.Error.Sigma[b]*level)
		out.Points = append(out.Points, forecast.Point{Start: t, End: t.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindEstimate})
	}
	return out
}

// BenchmarkForecastHorizon: how much of the single-region gap is forecast
// information. The single-region workloads of 2023, planned by the same
// planner with forecasts that know the next L hours exactly, and with a
// synthetic forecast as good as NESO's published GB forecasts measured.
func BenchmarkForecastHorizon(b *testing.B) {
	data := benchSetup(b)
	ts := newTraceSampler(b, data)
	gb, gbv := nesoGB(b, data)
	le := measureLeadError(gb, gbv, 12*time.Hour)
	require.NotEmpty(b, le.Sigma)
	from, to := time.Date(2023, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(2023, 12, 27, 0, 0, 0, 0, time.UTC)
	type variant struct {
		name string
		fc   func(actual forecast.Series) Forecaster
	}
	variants := []variant{{"own forecaster (greenq's default)", func(forecast.Series) Forecaster { return forecast.Forecaster{} }}}
	for _, h := range []int{6, 12, 24} {
		variants = append(variants, variant{fmt.Sprintf("next %d h exact, then own forecaster", h), func(a forecast.Series) Forecaster {
			return exactFirst{Actual: a, Lead: time.Duration(h) * time.Hour}
		}})
	}
	variants = append(variants,
		variant{"NESO-grade error (synthetic)", func(a forecast.Series) Forecaster { return syntheticForecast{Actual: a, Error: le, Seed: 1} }},
		variant{"every hour exact", func(a forecast.Series) Forecaster { return exactFirst{Actual: a, Lead: 1000 * time.Hour} }})
	var md strings.Builder
	md.WriteString("### Single region: capture against forecast information, 2023\n\n| forecast the planner sees | " + strings.Join(benchZones, " | ") + " | mean | misses |\n|---|" + strings.Repeat("---|", len(benchZones)+2) + "\n")
	carbon := map[string]forecast.Series{}
	jobs := map[string][]Job{}
	for i, z := range benchZones {
		carbon[z] = loadCarbon(b, filepath.Join(data, "carbon", "em_"+z+".csv"), z)
		jobs[z] = ts.slackJobs(2000, from, to, []string{z}, uint64(2023*10+i)) // as BenchmarkSingleRegion
	}
	var ref strings.Builder
	for vi, v := range variants {
		var sum, refSum float64
		misses, refMisses := 0, 0
		md.WriteString("| " + v.name + " |")
		for _, z := range benchZones {
			r, _ := runTimed(b, Config{Carbon: map[string]forecast.Series{z: carbon[z]}, Jobs: jobs[z], Forecaster: v.fc(carbon[z])})
			fmt.Fprintf(&md, " %.3f |", r.FractionOfOracleSavings)
			sum += r.FractionOfOracleSavings
			misses += r.Policies.GreenQ.DeadlineMisses
			if vi == 0 {
				fmt.Fprintf(&ref, " %.3f |", refFraction(r))
				refSum += refFraction(r)
				refMisses += r.Policies.Reference.DeadlineMisses
			}
		}
		fmt.Fprintf(&md, " %.3f | %d |\n", sum/float64(len(benchZones)), misses)
		if vi == 0 {
			fmt.Fprintf(&ref, " %.3f | %d |\n", refSum/float64(len(benchZones)), refMisses)
		}
	}
	md.WriteString("| reference policy (its own 7-day profile; causal) |" + ref.String())
	var sig []string
	for k, s := range le.Sigma {
		sig = append(sig, fmt.Sprintf("%d–%d h: %.1f %%", k*12, (k+1)*12, 100*s))
	}
	fmt.Fprintf(&md, "\nFraction of the oracle's savings; workloads as in the single-region table (same seeds). \"Next L h exact\": greenq's own forecaster with its first L hours replaced by the actual values at every issue. NESO-grade error: the actual series plus Gaussian error drawn afresh at every hourly issue, of the size NESO's fw48h GB vintages of 2023-03-14 → 03-16 show against the latest actuals (σ relative to the mean actual, by lead: %s; errors one hour apart correlate %.2f), scaled by each zone's mean of the last two weeks. These rows read the future and exist to locate the gap; the own forecaster's row is the one greenq runs without a provider. The last row is the reference policy on the same workloads, for comparison (it reads no future). %s\n",
		strings.Join(sig, ", "), le.Corr, referenceRule)
	benchWrite(b, "forecast_horizon", md.String())
}
