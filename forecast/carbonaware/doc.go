// Package carbonaware adapts the Green Software Foundation's Carbon Aware SDK
// WebAPI: forecasts from /emissions/forecasts/current
// ([].forecastData[].timestamp/duration/value, duration in minutes) and
// actuals from /emissions/bylocations ([].time/duration/rating). The SDK
// reports g/kWh; which signal that is depends on the data source behind the
// SDK, so it is configured.
package carbonaware
