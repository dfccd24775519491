// Package refresh keeps every region's carbon series fresh: on a cron
// schedule per provider it fetches each region's series, honours rate
// limits (429 + Retry-After, back-off with jitter), reuses a fresh series
// for a TTL, extends it beyond the provider's horizon with greenq's own
// forecaster, and writes it to a Store. When a provider fails it falls back
// — last good series, then the own forecaster over the region's history,
// then "no signal" — and says so in the series' Source, in metrics, and in
// the log once per change of state. A provider silent past the fetch
// timeout counts as down at once, whether or not it honours its context.
package refresh
