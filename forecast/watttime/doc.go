// Package watttime adapts the WattTime v3 API: a token from GET /login (HTTP
// Basic, valid 30 minutes, cached, renewed once on 401), forecasts from
// /v3/forecast and, optionally, actuals from /v3/historical. The signal is
// the marginal operating emissions rate (co2_moer), published in lbs/MWh
// and converted to g/kWh.
package watttime
