package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// human formats a quantity for people: three significant digits at most
// three decimals, no exponent, no trailing zeros and no "-0" (2.78e-16,
// the noise of a subtraction, and -0 are "0"; 1360.4 is "1360", 0.0831 is
// "0.083"; a real amount too small for three decimals is "<0.001").
func human(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	a := math.Abs(x)
	switch {
	case a < 1e-9:
		return "0"
	case a < 0.0005 && x > 0:
		return "<0.001"
	case a < 0.0005:
		return ">-0.001"
	}
	decimals := 0
	if a > 0 && a < 100 {
		decimals = min(3, 2-int(math.Floor(math.Log10(a))))
	}
	s := strconv.FormatFloat(x, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// grams formats gCO2e.
func grams(g float64) string { return human(g) + " gCO2e" }

// energy formats kWh, in Wh below one kWh (0.0004 kWh is "0.4 Wh").
func energy(kwh float64) string {
	if math.Abs(kwh) < 1 {
		return human(kwh*1000) + " Wh"
	}
	return human(kwh) + " kWh"
}

// usd formats dollars with cents.
func usd(x float64) string {
	s := "$" + strconv.FormatFloat(math.Abs(x), 'f', 2, 64)
	if x <= -0.005 {
		s = "-" + s
	}
	return s
}

// humanDuration formats d as people write it: 45s, 2m30s, 9h42m, 3d4h
// (seconds are dropped from an hour on, minutes from two days on).
func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = "0s"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(time.Second)
		s = joinUnits(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		s = joinUnits(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	default:
		d = d.Round(time.Hour)
		s = joinUnits(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
	}
	if neg {
		s = "-" + s
	}
	return s
}

func joinUnits(a int, au string, b int, bu string) string {
	if b == 0 {
		return strconv.Itoa(a) + au
	}
	return strconv.Itoa(a) + au + strconv.Itoa(b) + bu
}

// plural is "1 job", "2 jobs".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// shellQuote writes argv as a POSIX shell would need it typed, so a
// one-argument program reads as one: sh -c 'echo hello; sleep 15'.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = quoteArg(a)
	}
	return strings.Join(out, " ")
}

func quoteArg(a string) string {
	if a == "" {
		return "''"
	}
	safe := true
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,^", r)) {
			safe = false
			break
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// when formats t for a table: month, day, time and zone (03-01 13:00 CET).
func (g *globals) when(t time.Time) string {
	return t.In(g.loc).Format("01-02 15:04 MST")
}

// whenLong formats t for a job's details, with its weekday and seconds.
func (g *globals) whenLong(t time.Time) string {
	return t.In(g.loc).Format("Mon 2006-01-02 15:04:05 MST")
}

// relative says how far t is from now: "in 2h", "3m ago", "now".
func relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return "in " + humanDuration(d)
	default:
		return humanDuration(-d) + " ago"
	}
}
