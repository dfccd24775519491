// Package entsoe adapts the ENTSO-E Transparency Platform RESTful API
// (https://web-api.tp.entsoe.eu/api, free security token) into a life-cycle
// carbon-intensity forecast for a European bidding zone. ENTSO-E publishes
// no intensity; it publishes what one is made of:
//
//   - documentType A69, processType A01: the day-ahead generation forecast
//     for wind (onshore B19, offshore B18) and solar (B16), per bidding zone;
//   - documentType A65, processType A01: the day-ahead total load forecast;
//   - documentType A75, processType A16: actual generation per production
//     type, the zone's recent mix.
//
// The intensity of an hour of the day-ahead forecast is that of wind and
// solar as forecast plus the residual load (load − wind − solar) met by the
// recent mix: its baseload types (nuclear, run-of-river, biomass, waste,
// geothermal, other renewable, marine) at their mean output over the last
// HistoryWindow, the rest by the mean mix of the dispatchable types (fossil
// units, reservoir hydro, other) over the same days — or, without actuals,
// by a fixed mix (DefaultFixedMix). Each type weighs with its life-cycle
// factor (DefaultFactors: IPCC AR5 medians as Electricity Maps uses them).
// The forecast is calibrated to the actuals of the last day, and beyond the
// day-ahead horizon (end of tomorrow, Brussels time) greenq's own forecaster
// continues it, blended in over Config.Blend. The actuals before now are
// the A75 mix weighed the same way.
//
// A failed A75 call does not fail the fetch: the forecast comes back on the
// fixed mix and the series lists its history in Series.Missing.
package entsoe
