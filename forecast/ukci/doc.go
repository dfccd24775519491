// Package ukci adapts the UK Carbon Intensity API (NESO, no key needed):
// national forecasts from /intensity/{from}/fw48h and regional ones from
// /regional/intensity/{from}/fw48h/regionid/{id}, half-hourly, average
// signal. Zone "GB" is national; "GB-<id>" or a bare region id is regional.
package ukci
