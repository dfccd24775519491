// Package planning is greenq's one planning adapter: the only place that
// maps greenq's jobs, regions, prices and capacity onto package policy's
// planner and its answers back onto stored plans.
//
// A Planner owns the one policy.Config of a server. The leader's planning
// round (package queue) calls Plan; submit's provisional plan goes through
// the Planner's Provisional, which keeps the series cache and folds
// concurrent submissions into one Plan call; GET /v1/plan?explain= (package
// api, through queue) calls Explain, which sets a job's stored plan against
// the alternatives the planner weighed when it made that plan, so the chosen
// option is the stored plan; the releaser and the back-test share ReleaseAt.
// The adapter reads nothing itself: callers hand it the jobs and each
// region's facts (Region, as ReadRegion builds it, naming a fallback signal
// in Region.Fallback), or a Facts or SeriesReader to read them from. It
// imports policy, forecast and the root greenq package, never Redis.
package planning
