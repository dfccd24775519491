// Package planning is greenq's one planning adapter: the only place that
// maps greenq's jobs, regions, prices and capacity onto package policy's
// planner and its answers back onto stored plans.
//
// A Planner owns the one policy.Config of a server. The leader's planning
// round and submit's provisional plan (package queue) call Plan; GET
// /v1/plan?explain= (package api, through queue) calls Explain, which sets
// a job's stored plan against the alternatives the planner weighed when it
// made that plan, so the chosen option is the stored plan; the releaser and
// the back-test share ReleaseAt. The adapter reads nothing itself: callers
// hand it the jobs and each region's facts (Region), or a Facts to read
// them from. It imports policy and the root greenq package, never Redis.
package planning
