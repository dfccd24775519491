// Package backtest replays a workload against real carbon-intensity history
// to show what greenq would have saved: the engine behind `greenq simulate`.
//
// Run drives a virtual clock through submits, re-plan ticks and releases,
// and at each decision calls the production planner (policy.Plan, through
// the planning adapter the server uses) with only what was known then: the
// actual series up to that instant, extended into the future by the
// production forecaster, or the latest real forecast
// vintage issued by then. Four policies are scored on the actual series:
// now (start at submit in the first allowed region), greenq, a reference
// heuristic that sees no more than greenq does (a 7-day hourly profile plus
// the current deviation, decaying over 12 h; re-decided every hour; see
// runReference), and an oracle with perfect knowledge, exact when capacity
// is unbounded and a Lagrangian lower bound otherwise.
//
// A job's Estimate, when set, is the run time the planner is told while
// the job runs its real Duration, to score plans under misestimated
// durations. PolicyResult.DominanceViolations counts interruptible jobs
// greenq planned to emit more than the same job in one piece would.
//
// WorkingHoursJobs generates the working-hours workload shape (submits on
// workdays 09–17 local time, deadlines mixing the next workday 09:00,
// +8 h, +24 h and +72 h) beside the uniform shapes the benchmarks draw.
//
// The readers take the simulate file formats (carbon, workload, forecast
// vintages) and report errors as file:line:column.
package backtest
