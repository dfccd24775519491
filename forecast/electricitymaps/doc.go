// Package electricitymaps adapts the Electricity Maps v3 API (header
// auth-token): forecasts from /v3/carbon-intensity/forecast, actuals from
// /v3/carbon-intensity/history (last 24 h) or /past-range (older). The
// signal is average (life-cycle by default) intensity in g/kWh.
package electricitymaps
