package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Human formats show three significant figures: receipts rest on power
// samples, PUE settings and hourly grid intensities, none better than that.
const sigFigs = 3

// sig formats v to sigFigs significant figures without an exponent
// (12345 → "12300", 0.0012345 → "0.00123").
func sig(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	exp := int(math.Floor(math.Log10(math.Abs(v))))
	scale := math.Pow(10, float64(exp-sigFigs+1))
	r := math.Round(v/scale) * scale
	// Rounding may carry into a new digit (9.996 → 10.0).
	exp = int(math.Floor(math.Log10(math.Abs(r))))
	dec := max(0, sigFigs-1-exp)
	return strconv.FormatFloat(r, 'f', dec, 64)
}

// approx prefixes "≈" to an estimated figure.
func approx(estimated bool, s string) string {
	if estimated {
		return "≈" + s
	}
	return s
}

// mass formats grams of CO2e in g, kg or t.
func mass(g float64) string {
	a := math.Abs(g)
	switch {
	case a >= 1e6:
		return sig(g/1e6) + " tCO2e"
	case a >= 1e3:
		return sig(g/1e3) + " kgCO2e"
	}
	return sig(g) + " gCO2e"
}

// energy formats kWh in Wh, kWh or MWh.
func energy(kwh float64) string {
	a := math.Abs(kwh)
	switch {
	case a >= 1e3:
		return sig(kwh/1e3) + " MWh"
	case a > 0 && a < 1:
		return sig(kwh*1e3) + " Wh"
	}
	return sig(kwh) + " kWh"
}

// pct formats a share (0–1) as a percentage with two significant figures
// at most; shares come from the same three-figure inputs.
func pct(share float64) string {
	v := share * 100
	if v == 0 {
		return "0 %"
	}
	return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + " %"
}

// hours formats a duration in hours.
func hours(h float64) string { return sig(h) + " h" }

// usd formats money; planned costs are no more precise than the rest.
func usd(v float64) string { return "$" + sig(v) }

// dur formats a wait given in hours: seconds, minutes or hours.
func dur(h float64) string {
	switch s := h * 3600; {
	case s < 60:
		return sig(s) + " s"
	case s < 3600:
		return sig(s/60) + " min"
	}
	return hours(h)
}

// plural writes n and a noun, adding "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// fig formats a figure for people: unit-scaled, three significant figures,
// "≈" when estimated.
func fig(f Figure) string {
	var s string
	switch f.Unit {
	case "gCO2e":
		s = mass(f.Value)
	case "kWh":
		s = energy(f.Value)
	case "GPU-h":
		s = sig(f.Value) + " GPU-h"
	case "USD":
		s = usd(f.Value)
	case "":
		s = sig(f.Value)
	default:
		s = sig(f.Value) + " " + f.Unit
	}
	return approx(f.Estimated(), s)
}

// how says in words how a figure was obtained.
func how(f Figure) string {
	if len(f.Sources) == 0 {
		return f.Basis
	}
	return fmt.Sprintf("%s (%s)", f.Basis, strings.Join(f.Sources, ", "))
}
