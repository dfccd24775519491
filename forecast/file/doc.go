// Package file reads a region's signal from <zone>.csv files with the header
// time_utc,gco2_per_kwh (the layout of greenq's shared data), at any step.
// With Replay it shifts history by whole weeks onto today's dates, for demo
// regions; the series' source then says it is replayed.
package file
