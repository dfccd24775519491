package entsoe

import (
	"fmt"
	"sort"
	"time"
)

// DefaultFactors are the life-cycle emission factors, gCO2e/kWh, per
// ENTSO-E production type (psrType). They are the medians of IPCC AR5 WG III
// Annex III (2014, Table A.III.2) as Electricity Maps uses them for its
// life-cycle signal (electricitymaps/electricitymaps-contrib
// config/defaults.yaml, emissionFactors.lifecycle, commit 41204e2b: biomass
// 230, coal 820, gas 490, geothermal 38, hydro 24, nuclear 12, solar 45,
// wind 11, and oil 650 from UK POST, unknown 700). The mapping of types to
// those fuels is greenq's: lignite, coal-derived gas and peat count as coal;
// oil shale as oil; waste and "other renewable" as biomass; marine takes
// AR5's ocean median, 17; "other" is Electricity Maps' unknown.
//
// Let's Wait Awhile (Wiesner et al., Middleware '21,
// dos-group/lets-wait-awhile compute_carbon_intensity.py) used the older
// IPCC SRREN (2011) Annex II medians instead — gas 469, coal 1001, oil 840,
// nuclear 16, hydro 4, wind 12, solar 46, biomass 18, geothermal 45 — so
// its series sit lower for gas-heavy and higher for coal-heavy mixes; pass
// those as Config.Factors to reproduce it (the tests do).
//
// Hydro pumped storage (B10) and other storage (B25) are left out of every
// mix, as Let's Wait Awhile does: their energy was generated earlier by the
// rest of the mix.
var DefaultFactors = map[string]float64{
	PSRBiomass: 230, PSRLignite: 820, PSRCoalGas: 820, PSRGas: 490, PSRHardCoal: 820,
	PSROil: 650, PSROilShale: 650, PSRPeat: 820, PSRGeothermal: 38, PSRRunOfRiver: 24,
	PSRReservoir: 24, PSRMarine: 17, PSRNuclear: 12, PSROtherRenewable: 230, PSRSolar: 45,
	PSRWaste: 230, PSRWindOffshore: 11, PSRWindOnshore: 11, PSROther: 700,
}

// ENTSO-E production types (psrType).
const (
	PSRBiomass        = "B01"
	PSRLignite        = "B02"
	PSRCoalGas        = "B03"
	PSRGas            = "B04"
	PSRHardCoal       = "B05"
	PSROil            = "B06"
	PSROilShale       = "B07"
	PSRPeat           = "B08"
	PSRGeothermal     = "B09"
	PSRPumpedStorage  = "B10"
	PSRRunOfRiver     = "B11"
	PSRReservoir      = "B12"
	PSRMarine         = "B13"
	PSRNuclear        = "B14"
	PSROtherRenewable = "B15"
	PSRSolar          = "B16"
	PSRWaste          = "B17"
	PSRWindOffshore   = "B18"
	PSRWindOnshore    = "B19"
	PSROther          = "B20"
	PSRStorage        = "B25"
)

// DefaultFixedMix is the mix assumed to meet the residual load when the
// zone's actual generation per type (A75) is not available: 60 % gas and
// 40 % hard coal, 622 g/kWh with the default factors. It is greenq's
// assumption for a fossil-fired residual, not a published figure.
var DefaultFixedMix = map[string]float64{PSRGas: 0.6, PSRHardCoal: 0.4}

// baseload types are held at their recent mean output whatever the wind
// and sun do; the residual load beyond them is met by the dispatchable
// rest of the recent mix (fossil units, reservoir hydro, "other").
var baseload = map[string]bool{
	PSRNuclear: true, PSRRunOfRiver: true, PSRGeothermal: true, PSRBiomass: true,
	PSRWaste: true, PSROtherRenewable: true, PSRMarine: true,
}

func variable(psr string) bool {
	return psr == PSRSolar || psr == PSRWindOffshore || psr == PSRWindOnshore
}

func storage(psr string) bool { return psr == PSRPumpedStorage || psr == PSRStorage }

// mix is what meets the residual load (load − wind − solar): baseMW of
// baseload at baseEF, the rest at dispEF.
type mix struct {
	baseMW, baseEF, dispEF float64
}

// generation is the zone's actual generation per type.
type generation map[string]curve

func newGeneration(ss []series) generation {
	g := generation{}
	for _, s := range ss {
		if s.consumption || s.psr == "" || storage(s.psr) {
			continue
		}
		g[s.psr] = append(g[s.psr], s.blocks...)
	}
	for k := range g {
		c := g[k]
		sort.SliceStable(c, func(a, b int) bool { return c[a].start.Before(c[b].start) })
	}
	return g
}

// intensity returns the life-cycle intensity of the actual mix over
// [a, b): Σ MW × factor / Σ MW over the types that report; negative
// outputs count as 0.
func (g generation) intensity(a, b time.Time, factors map[string]float64) (float64, bool) {
	var mw, gco2 float64
	for psr, c := range g {
		v, ok := c.mean(a, b)
		if !ok || v <= 0 {
			continue
		}
		f, known := factors[psr]
		if !known {
			f = factors[PSROther]
		}
		mw += v
		gco2 += v * f
	}
	if mw <= 0 {
		return 0, false
	}
	return gco2 / mw, true
}

// recentMix returns the mix meeting the residual load, from the mean output
// per type over [a, b), or the fixed mix when g says nothing there.
func (g generation) recentMix(a, b time.Time, factors, fixed map[string]float64) (mix, error) {
	var base, baseG, disp, dispG float64
	for psr, c := range g {
		if variable(psr) {
			continue
		}
		v, ok := c.mean(a, b)
		if !ok || v <= 0 {
			continue
		}
		f, known := factors[psr]
		if !known {
			f = factors[PSROther]
		}
		if baseload[psr] {
			base, baseG = base+v, baseG+v*f
		} else {
			disp, dispG = disp+v, dispG+v*f
		}
	}
	m := mix{baseMW: base}
	if base > 0 {
		m.baseEF = baseG / base
	}
	if disp > 0 {
		m.dispEF = dispG / disp
		return m, nil
	}
	// Nothing dispatchable ran recently (or no actuals at all): the
	// residual beyond the baseload is met by the fixed mix.
	ef, err := fixedEF(fixed, factors)
	if err != nil {
		return mix{}, err
	}
	m.dispEF = ef
	return m, nil
}

func fixedEF(fixed, factors map[string]float64) (float64, error) {
	var share, g float64
	for psr, s := range fixed {
		f, ok := factors[psr]
		if !ok || s < 0 {
			return 0, fmt.Errorf("fixed mix: type %s (share %v) has no emission factor", psr, s)
		}
		share += s
		g += s * f
	}
	if share <= 0 {
		return 0, fmt.Errorf("fixed mix: shares add up to %v", share)
	}
	return g / share, nil
}

// forecastIntensity is the intensity of an hour with load MW of demand of
// which wind and solar meet vreMW (at vreGCO2 MW·g/kWh in all, from the
// day-ahead forecast), the residual the mix: baseload up to its recent
// output, the rest dispatchable. Wind and sun beyond the load count only
// themselves (exported or curtailed, they displace nothing here).
func (m mix) forecastIntensity(load, vreMW, vreGCO2 float64) float64 {
	residual := max(0, load-vreMW)
	base := min(m.baseMW, residual)
	disp := residual - base
	mw := vreMW + base + disp
	if mw <= 0 {
		return 0
	}
	return (vreGCO2 + base*m.baseEF + disp*m.dispEF) / mw
}
