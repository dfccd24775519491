// Package executortest is the one suite every executor passes (as every
// forecast provider passes forecasttest): the command runs with exactly the
// environment and working directory it is given, its output and exit
// status come back, SIGTERM reaches a handler inside the job, SIGKILL ends
// one that ignores it, and nothing it started outlives it.
package executortest
