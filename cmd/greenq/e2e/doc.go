// Package e2e holds greenq's end-to-end, fault and scale-out tests. They
// build the real greenq binary once (TestMain), start real redis-server,
// redis-sentinel and Redis Cluster processes on free loopback ports in
// temporary directories, run `greenq server` and `greenq worker` processes
// against them, and drive them through the HTTP API and the CLI, as an
// operator and a user would. Where a fault needs a knob the binary does not
// offer (a worker's clock, the forecast refresh's timeout and TTL), a test
// builds the same components in its own process against a real
// redis-server instead (inproc_test.go).
//
// The carbon series are real history (testdata/, see its README) whose
// timestamps the tests rewrite onto test-relative times, so the best region
// and window of each job are known from the values alone.
//
// Without redis-server the tests fail, saying how to install it; without
// redis-sentinel (the Sentinel test) or redis-cli (the Cluster test) they
// fail under CI and skip elsewhere, saying what is missing. The load
// benchmarks (BenchmarkSubmit, BenchmarkBatchSubmit, BenchmarkLoad) run
// with -bench (make bench) and write markdown to $GREENQ_BENCH_OUT.
package e2e
