package worker

import (
	"slices"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// DefaultEmbodiedGCO2PerGPUHour is SCI's M per GPU-hour when none is
// configured: 11.2 tCO2e of embodied emissions (GPUs and their share of
// servers, 6-year life) over the 1,082,990 A100 GPU-hours of BLOOM's
// training, from Luccioni, Viguier & Ligozat, "Estimating the Carbon
// Footprint of BLOOM, a 176B Parameter Language Model" (JMLR 2023,
// arXiv:2211.02001), i.e. about 10.3 gCO2e per GPU-hour.
const DefaultEmbodiedGCO2PerGPUHour = 11.2e6 / 1082990

// SegmentEnergy is one real run interval of a job and the energy it used.
type SegmentEnergy struct {
	Region     string
	Start, End time.Time
	GPUKWh     float64
	CPUKWh     float64
	RAMKWh     float64
	// OtherKWh is energy recorded without a breakdown (segments run before
	// this worker's, known only by their total).
	OtherKWh float64
}

// KWh returns the segment's total energy.
func (s SegmentEnergy) KWh() float64 { return s.GPUKWh + s.CPUKWh + s.RAMKWh + s.OtherKWh }

// ReceiptInput is everything a receipt is computed from; ComputeReceipt
// reads nothing else.
type ReceiptInput struct {
	// Segments are the job's real run intervals, in order.
	Segments []SegmentEnergy
	// Series holds the stored carbon series by region: the regions the
	// segments ran in and the baseline region. A missing region is
	// unavailable.
	Series map[string]forecast.Series
	// PUE by region; a missing or non-positive value is 1.
	PUE map[string]float64
	// Plan is the job's plan (nil when it has none): its baseline is the
	// run-now comparison, and its expected figures the fallback intensity.
	Plan *greenq.Plan
	// GPUs is the job's GPU count, for embodied emissions.
	GPUs int
	// EmbodiedGCO2PerGPUHour is SCI's M per GPU-hour.
	EmbodiedGCO2PerGPUHour float64
	// FunctionalUnit names SCI's R; "" means "job".
	FunctionalUnit string
	// FunctionalUnits is how many units of R the job produced; ≤ 0 means 1.
	FunctionalUnits float64
	// EnergySource and CPUEnergySource label the measurements.
	EnergySource      string
	CPUEnergySource   string
	GPUModel          string
	GPUUtilizationPct float64
	GPUMemoryUsedMiB  float64
	// GPUUtilizationSamples counts the samples behind GPUUtilizationPct.
	GPUUtilizationSamples int
}

func (in ReceiptInput) pue(region string) float64 {
	if p := in.PUE[region]; p > 0 {
		return p
	}
	return 1
}

// planIntensity is the intensity the plan expected, derived from its
// expected gCO2e and energy; ok is false when the plan cannot say.
func planIntensity(gco2, kwh, pue float64) (float64, bool) {
	if kwh <= 0 || gco2 < 0 {
		return 0, false
	}
	return gco2 / (kwh * pue), true
}

// labels collects source labels in first-seen order.
type labels []string

func (l *labels) add(s string) {
	if s != "" && !slices.Contains(*l, s) {
		*l = append(*l, s)
	}
}

// seriesIntensity is the time-weighted intensity of s over [from, to) and
// a label naming the source and the kinds of point used ("file:actual",
// "electricitymaps:actual+forecast").
func seriesIntensity(s forecast.Series, from, to time.Time) (float64, string, bool) {
	mean, covered := s.Mean(from, to)
	if covered <= 0 {
		return 0, "", false
	}
	var (
		kinds []string
		used  []float64
	)
	pts := s.Slice(from, to).Points
	for _, k := range []forecast.PointKind{forecast.KindActual, forecast.KindForecast, forecast.KindEstimate} {
		for _, p := range pts {
			if p.Kind == k && p.End.After(from) && p.Start.Before(to) {
				kinds = append(kinds, string(k))
				break
			}
		}
	}
	for _, p := range pts {
		if p.End.After(from) && p.Start.Before(to) && !slices.Contains(used, p.GCO2PerKWh) {
			used = append(used, p.GCO2PerKWh)
		}
	}
	if len(used) == 1 {
		mean = used[0] // exact, without the rounding of a weighted mean
	}
	src := s.Source
	if src == "" {
		src = "series"
	}
	return mean, src + ":" + strings.Join(kinds, "+"), true
}

// ComputeReceipt builds a job's carbon receipt. Within a segment the
// intensity is time-weighted over the region's series (actual points where
// the series has them, else forecast); across segments it is weighted by
// facility energy. The totals hold exactly:
//
//	GCO2      = EnergyKWh × PUE × IntensityGCO2PerKWh
//	SavedGCO2 = BaselineGCO2 − GCO2
//	SCI       = (GCO2 + EmbodiedGCO2) / R
//
// Average and marginal signals are never mixed: a segment whose series has
// another signal than the first segment's falls back to the plan's
// expected intensity, as does one the series does not cover.
func ComputeReceipt(in ReceiptInput) greenq.Receipt {
	r := greenq.Receipt{
		EnergySource:          in.EnergySource,
		CPUEnergySource:       in.CPUEnergySource,
		GPUModel:              in.GPUModel,
		GPUUtilizationPct:     in.GPUUtilizationPct,
		GPUMemoryUsedMiB:      in.GPUMemoryUsedMiB,
		GPUUtilizationSamples: in.GPUUtilizationSamples,
		FunctionalUnit:        in.FunctionalUnit,
	}
	if r.FunctionalUnit == "" {
		r.FunctionalUnit = "job"
	}
	var signal forecast.Signal
	if len(in.Segments) > 0 {
		if s, ok := in.Series[in.Segments[0].Region]; ok {
			signal = s.Signal
		}
	}
	var (
		dur               time.Duration
		facility, emitted float64 // Σ E×PUE, Σ E×PUE×I
		timeI             float64 // Σ I×t, for a run with no energy
		srcs              labels
		distinct          []float64 // intensities used, to avoid rounding when there is one
	)
	for _, seg := range in.Segments {
		d := seg.End.Sub(seg.Start)
		if d < 0 {
			d = 0
		}
		dur += d
		e := seg.KWh()
		r.GPUEnergyKWh += seg.GPUKWh
		r.CPUEnergyKWh += seg.CPUKWh
		r.RAMEnergyKWh += seg.RAMKWh
		r.EnergyKWh += e
		pue := in.pue(seg.Region)
		var (
			i   float64
			src string
			ok  bool
		)
		if s, has := in.Series[seg.Region]; has && (signal == "" || s.Signal == signal) {
			i, src, ok = seriesIntensity(s, seg.Start, seg.End)
		}
		if !ok && in.Plan != nil {
			i, ok = planIntensity(in.Plan.ExpectedGCO2, in.Plan.ExpectedKWh, in.pue(in.Plan.Region))
			src = "plan:forecast"
		}
		if !ok {
			src = "unavailable"
		}
		srcs.add(src)
		if !slices.Contains(distinct, i) {
			distinct = append(distinct, i)
		}
		facility += e * pue
		emitted += e * pue * i
		timeI += i * d.Seconds()
	}
	r.DurationS = dur.Seconds()
	r.Signal = string(signal)
	r.IntensitySource = strings.Join(srcs, ",")
	if r.EnergyKWh > 0 {
		r.PUE = facility / r.EnergyKWh
	} else {
		r.PUE = 1
		if len(in.Segments) > 0 {
			r.PUE = in.pue(in.Segments[0].Region)
		}
	}
	switch {
	case len(distinct) == 1:
		r.IntensityGCO2PerKWh = distinct[0]
	case facility > 0:
		r.IntensityGCO2PerKWh = emitted / facility
	case dur > 0:
		r.IntensityGCO2PerKWh = timeI / dur.Seconds()
	}
	r.GCO2 = r.EnergyKWh * r.PUE * r.IntensityGCO2PerKWh

	// The run-now baseline: the same energy in the baseline region,
	// starting when the job was submitted, for as long as the job ran.
	r.BaselineGCO2 = r.GCO2
	if p := in.Plan; p != nil && p.Baseline.Region != "" {
		bpue := in.pue(p.Baseline.Region)
		var (
			bi float64
			ok bool
		)
		if s, has := in.Series[p.Baseline.Region]; has && (signal == "" || s.Signal == signal) {
			bi, _, ok = seriesIntensity(s, p.Baseline.Start, p.Baseline.Start.Add(dur))
		}
		if !ok {
			bi, ok = planIntensity(p.Baseline.ExpectedGCO2, p.ExpectedKWh, bpue)
		}
		if ok {
			r.BaselineRegion = p.Baseline.Region
			r.BaselineIntensityGCO2PerKWh = bi
			r.BaselineGCO2 = r.EnergyKWh * bpue * bi
		}
	}
	r.SavedGCO2 = r.BaselineGCO2 - r.GCO2

	gpuHours := float64(in.GPUs) * dur.Hours()
	r.EmbodiedGCO2 = in.EmbodiedGCO2PerGPUHour * gpuHours
	units := in.FunctionalUnits
	if units <= 0 {
		units = 1
	}
	r.SCI = (r.GCO2 + r.EmbodiedGCO2) / units
	return r
}
