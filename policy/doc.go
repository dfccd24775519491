// Package policy is greenq's planner. It is pure: Plan takes jobs, each
// region's carbon series, prices and capacity, the slot and `now` as values
// and returns, for every job, a region and window (or run segments) with the
// expected emissions, cost, the run-now baseline and a reason. It reads no
// clock, no Redis, no network and logs nothing.
package policy
