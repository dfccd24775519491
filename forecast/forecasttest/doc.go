// Package forecasttest is the conformance suite every forecast provider
// adapter passes: it replays a provider's wire payloads from an httptest
// server and checks that good answers become valid series with the right
// signal and values, and that failures (5xx, garbage, empty data, 429 with
// Retry-After, a cancelled context) surface as typed, wrapped errors — never
// as panics or silent zeros. A provider whose history and forecast come from
// separate calls must keep the forecast when only the history fails, and
// label the history missing (forecast.Series.Missing).
package forecasttest
