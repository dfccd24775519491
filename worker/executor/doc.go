// Package executor is the seam between a greenq worker and what runs a
// job's command: a process group on the worker's machine
// (executor/process), a container through podman or docker
// (executor/container), and, behind the same three calls, a cluster's own
// scheduler. The worker prepares everything a run needs (argv, the whole
// environment, directories, GPUs, user) as a Spec; an Executor starts it;
// the Process it returns takes signals and reports the exit.
//
// The worker owns the stop protocol (SIGTERM, the job's grace, SIGKILL) and
// sends each signal through Process.Signal, so every executor stops a job
// the same way. executortest is the one suite every executor passes.
package executor
