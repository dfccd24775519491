package worker

import (
	"slices"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// DefaultEmbodiedGCO2PerGPUHour is SCI's M per GPU-hour when none is
// configured (greenq.DefaultEmbodiedGCO2PerGPUHour, about 10.3 gCO2e per
// GPU-hour; see there for the source).
const DefaultEmbodiedGCO2PerGPUHour = greenq.DefaultEmbodiedGCO2PerGPUHour

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
	// segments ran in and the home region. A missing region is
	// unavailable.
	Series map[string]forecast.Series
	// Regions are the facts of the regions by name, from the server's
	// configuration (queue.Store.SharedRegions): PUE, prices and the
	// embodied factor. Where a region is listed they win over PUE and
	// EmbodiedGCO2PerGPUHour.
	Regions map[string]greenq.Region
	// PUE by region, for regions Regions does not list; a missing or
	// non-positive value is 1.
	PUE map[string]float64
	// Plan is the job's plan (nil when it has none): its baseline names the
	// home region and submit time where Home and SubmittedAt are unset, and
	// its expected figures are the fallback intensity and price.
	Plan *greenq.Plan
	// Home is the job's home region, where the baseline runs; default the
	// plan's baseline region.
	Home string
	// SubmittedAt is when the job was submitted, when the baseline starts;
	// default the plan's baseline start.
	SubmittedAt time.Time
	// GPUs is the job's GPU count, for GPU-hours, cost and embodied
	// emissions.
	GPUs int
	// EmbodiedGCO2PerGPUHour is SCI's M per GPU-hour, for regions Regions
	// does not list or that set none.
	EmbodiedGCO2PerGPUHour float64
	// FunctionalUnit names SCI's R; "" means "job".
	FunctionalUnit string
	// FunctionalUnits is how many units of R the job produced; ≤ 0 means 1.
	FunctionalUnits float64
	// EnergySource and CPUEnergySource label the measurements.
	EnergySource    greenq.EnergySource
	CPUEnergySource greenq.EnergySource
	// EnergyMeter says where the energy was measured (MeterWorker, …).
	EnergyMeter       string
	GPUModel          string
	GPUUtilizationPct float64
	GPUMemoryUsedMiB  float64
	// GPUUtilizationSamples counts the samples behind GPUUtilizationPct.
	GPUUtilizationSamples int
}

func (in ReceiptInput) pue(region string) float64 {
	if r, ok := in.Regions[region]; ok && r.PUE > 0 {
		return r.PUE
	}
	if p := in.PUE[region]; p > 0 {
		return p
	}
	return 1
}

// embodied is region's embodied emissions per GPU-hour.
func (in ReceiptInput) embodied(region string) float64 {
	if r, ok := in.Regions[region]; ok {
		return r.Embodied(in.EmbodiedGCO2PerGPUHour)
	}
	return max(in.EmbodiedGCO2PerGPUHour, 0)
}

// cost is what gpus GPUs cost over [from, to) in region: its price
// schedule where the region's facts are known, else the price per
// GPU-hour the plan expected.
func (in ReceiptInput) cost(region string, gpus int, from, to time.Time) float64 {
	if r, ok := in.Regions[region]; ok {
		return r.CostUSD(gpus, from, to)
	}
	p := in.Plan
	if p == nil || gpus <= 0 || !to.After(from) {
		return 0
	}
	planned := float64(gpus) * p.End.Sub(p.Start).Hours()
	if planned <= 0 {
		return 0
	}
	return p.ExpectedCostUSD / planned * float64(gpus) * to.Sub(from).Hours()
}

// home returns the baseline's region and start.
func (in ReceiptInput) home() (string, time.Time) {
	region, start := in.Home, in.SubmittedAt
	if p := in.Plan; p != nil {
		if region == "" {
			region = p.Baseline.Region
		}
		if start.IsZero() {
			start = p.Baseline.Start
		}
	}
	return region, start
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
// and, up to rounding, SavedGCO2 = SavedByWaitingGCO2 + SavedByMovingGCO2
// and CostUSD = GPUHours × PriceUSDPerGPUHour.
//
// The baseline is the same energy run in the home region from submit, for
// as long as the job ran. Waiting saved what the regions the job ran in
// would have emitted had each segment run at submit (the segments back to
// back from then), less what the job emitted; moving saved the rest, the
// baseline against that.
//
// Average and marginal signals are never mixed: a segment whose series has
// another signal than the first segment's falls back to the plan's
// expected intensity, as does one the series does not cover.
func ComputeReceipt(in ReceiptInput) greenq.Receipt {
	r := greenq.Receipt{
		EnergySource:          in.EnergySource,
		CPUEnergySource:       in.CPUEnergySource,
		EnergyMeter:           in.EnergyMeter,
		GPUModel:              in.GPUModel,
		GPUUtilizationPct:     in.GPUUtilizationPct,
		GPUMemoryUsedMiB:      in.GPUMemoryUsedMiB,
		GPUUtilizationSamples: in.GPUUtilizationSamples,
		FunctionalUnit:        in.FunctionalUnit,
	}
	if r.FunctionalUnit == "" {
		r.FunctionalUnit = "job"
	}
	if in.FunctionalUnits > 0 {
		r.FunctionalUnits = in.FunctionalUnits
	}
	var signal forecast.Signal
	if len(in.Segments) > 0 {
		if s, ok := in.Series[in.Segments[0].Region]; ok {
			signal = s.Signal
		}
	}
	// intensity is region's over [from, to) on the receipt's signal.
	intensity := func(region string, from, to time.Time) (float64, string, bool) {
		if s, has := in.Series[region]; has && (signal == "" || s.Signal == signal) {
			return seriesIntensity(s, from, to)
		}
		return 0, "", false
	}
	homeRegion, submitted := in.home()
	var (
		dur               time.Duration
		facility, emitted float64 // Σ E×PUE, Σ E×PUE×I
		atSubmit          float64 // Σ E×PUE×I had each segment run from submit
		timeI             float64 // Σ I×t, for a run with no energy
		embodied, cost    float64
		srcs              labels
		distinct          []float64 // intensities used, to avoid rounding when there is one
	)
	gpus := max(in.GPUs, 0)
	for _, seg := range in.Segments {
		d := seg.End.Sub(seg.Start)
		if d < 0 {
			d = 0
		}
		e := seg.KWh()
		r.GPUEnergyKWh += seg.GPUKWh
		r.CPUEnergyKWh += seg.CPUKWh
		r.RAMEnergyKWh += seg.RAMKWh
		r.EnergyKWh += e
		pue := in.pue(seg.Region)
		i, src, ok := intensity(seg.Region, seg.Start, seg.End)
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
		// The same segment in the same region, moved to submit time (after
		// the segments before it); where the series cannot say, as it ran.
		ws := submitted.Add(dur)
		wi, _, wok := intensity(seg.Region, ws, ws.Add(d))
		if submitted.IsZero() || !wok {
			wi = i
		}
		dur += d
		facility += e * pue
		emitted += e * pue * i
		atSubmit += e * pue * wi
		timeI += i * d.Seconds()
		embodied += in.embodied(seg.Region) * float64(gpus) * d.Hours()
		cost += in.cost(seg.Region, gpus, seg.Start, seg.Start.Add(d))
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

	// The run-now baseline: the same energy in the home region, starting
	// when the job was submitted, for as long as the job ran.
	r.BaselineGCO2 = r.GCO2
	if homeRegion != "" {
		bpue := in.pue(homeRegion)
		bi, _, ok := intensity(homeRegion, submitted, submitted.Add(dur))
		if submitted.IsZero() {
			ok = false
		}
		if !ok && in.Plan != nil && in.Plan.Baseline.Region == homeRegion {
			bi, ok = planIntensity(in.Plan.Baseline.ExpectedGCO2, in.Plan.ExpectedKWh, bpue)
		}
		if ok {
			r.BaselineRegion = homeRegion
			r.BaselineIntensityGCO2PerKWh = bi
			r.BaselineGCO2 = r.EnergyKWh * bpue * bi
			r.SavedByWaitingGCO2 = atSubmit - r.GCO2
			r.SavedByMovingGCO2 = r.BaselineGCO2 - atSubmit
		}
	}
	r.SavedGCO2 = r.BaselineGCO2 - r.GCO2

	r.GPUHours = float64(gpus) * dur.Hours()
	r.CostUSD = cost
	if r.GPUHours > 0 {
		r.PriceUSDPerGPUHour = cost / r.GPUHours
	}
	r.EmbodiedGCO2 = embodied
	units := in.FunctionalUnits
	if units <= 0 {
		units = 1
	}
	r.SCI = (r.GCO2 + r.EmbodiedGCO2) / units
	return r
}
