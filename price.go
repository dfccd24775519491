package greenq

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultEmbodiedGCO2PerGPUHour is SCI's M per GPU-hour when none is
// configured: 11.2 tCO2e of embodied emissions (GPUs and their share of
// servers, 6-year life) over the 1,082,990 A100 GPU-hours of BLOOM's
// training, from Luccioni, Viguier & Ligozat, "Estimating the Carbon
// Footprint of BLOOM, a 176B Parameter Language Model" (JMLR 2023,
// arXiv:2211.02001), i.e. about 10.3 gCO2e per GPU-hour.
const DefaultEmbodiedGCO2PerGPUHour = 11.2e6 / 1082990

// PriceAt returns the price of one GPU-hour in r at t: the first
// PriceSchedule step whose hours [FromHour, ToHour) UTC hold t (FromHour >
// ToHour wraps past midnight), else GPUPriceUSDPerHour. It reads the
// schedule as package policy's planner does.
func (r Region) PriceAt(t time.Time) float64 {
	h := t.UTC().Hour()
	for _, st := range r.PriceSchedule {
		in := h >= st.FromHour && h < st.ToHour
		if st.FromHour > st.ToHour {
			in = h >= st.FromHour || h < st.ToHour
		}
		if in {
			return st.USDPerGPUHour
		}
	}
	return r.GPUPriceUSDPerHour
}

// CostUSD returns what gpus GPUs cost in r over [from, to): the price in
// force in each UTC hour (PriceAt) times the GPU-hours spent in it.
func (r Region) CostUSD(gpus int, from, to time.Time) float64 {
	if !to.After(from) || gpus <= 0 {
		return 0
	}
	var usd float64
	for t := from; t.Before(to); {
		next := t.UTC().Truncate(time.Hour).Add(time.Hour)
		if next.After(to) {
			next = to
		}
		usd += r.PriceAt(t) * next.Sub(t).Hours()
		t = next
	}
	return float64(gpus) * usd
}

// MinPrice returns the lowest price r's schedule ever charges for a
// GPU-hour, over the 24 hours of a day.
func (r Region) MinPrice() float64 {
	day := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	m := r.PriceAt(day)
	for h := 1; h < 24; h++ {
		m = min(m, r.PriceAt(day.Add(time.Duration(h)*time.Hour)))
	}
	return m
}

// Embodied returns r's embodied emissions per GPU-hour, def when it sets
// none (0) and 0 when it is negative.
func (r Region) Embodied(def float64) float64 {
	switch e := r.EmbodiedGCO2PerGPUHour; {
	case e < 0:
		return 0
	case e > 0:
		return e
	}
	return max(def, 0)
}

// CheckPriceCap refuses a job whose price cap (USD per GPU-hour; 0 = none)
// lies below every price the schedules of its allowed regions (named by
// allowed; empty: every region of known) ever charge: it could never run.
// A name not in known is ignored. The error is an *Error with
// CodeInvalidArgument naming max_price_usd_per_gpu_hour.
func CheckPriceCap(maxPrice float64, allowed []string, known []Region) error {
	if maxPrice <= 0 || len(known) == 0 {
		return nil
	}
	var (
		prices []string
		found  bool
	)
	for _, r := range known {
		if len(allowed) > 0 && !slices.Contains(allowed, r.Name) {
			continue
		}
		found = true
		m := r.MinPrice()
		if m <= maxPrice {
			return nil
		}
		prices = append(prices, fmt.Sprintf("%s: $%.2f", r.Name, m))
	}
	if !found {
		return nil
	}
	return Invalid("max_price_usd_per_gpu_hour", "$%.2f per GPU-hour is below the lowest price of every allowed region at any hour (%s): the job could never run; raise the cap or allow a cheaper region",
		maxPrice, strings.Join(prices, ", "))
}
