package greenq

import "strings"

// RestsOnForecast reports whether r's intensity came, for some of the run,
// from forecast or estimated values rather than the provider's actuals:
// some label of IntensitySource ("file:actual+forecast", "plan:forecast")
// names a forecast or an estimate. Such a receipt is restated from actuals
// when they arrive.
func (r Receipt) RestsOnForecast() bool {
	for _, l := range strings.Split(r.IntensitySource, ",") {
		i := strings.LastIndex(l, ":")
		if i < 0 {
			continue
		}
		for _, k := range strings.Split(l[i+1:], "+") {
			if k == "forecast" || k == "estimate" {
				return true
			}
		}
	}
	return false
}
