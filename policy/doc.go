// Package policy is greenq's planner. It is pure: Plan takes jobs, each
// region's carbon series, prices and capacity, the slot and `now` as values
// and returns, for every job, a region and window (or run segments) with the
// expected emissions, cost, the run-now baseline, the alternatives it
// weighed and a reason people can read. It reads no clock, no Redis, no
// network and logs nothing; it imports only the standard library and
// package forecast.
//
// Each round lays every region on the slot grid once (per-slot intensity
// and price, their prefix sums, free GPUs), so scoring a window is a few
// loads; Plan's doc comment states the objective, the deadline rules, the
// capacity algorithm and what it guarantees. ReleaseAt is the release rule
// the server and the back-test share.
package policy
