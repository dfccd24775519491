// Package executortest is the one suite every executor passes (as every
// forecast provider passes forecasttest): the command runs with exactly the
// environment and working directory it is given, its output and exit
// status come back, SIGTERM reaches a handler inside the job, SIGKILL ends
// one that ignores it, and nothing it started outlives it; secrets arrive
// (by name from the executor's own store, or resolved by the worker), a
// cancel is SIGTERM → grace → SIGKILL, capacity is reported and counts the
// executor's own jobs (for an executor without a cluster, the case says
// capacity is the worker's GPU pool), and a paused job's checkpoint is
// there when its next run starts.
package executortest
