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
//
// An executor that hands jobs to a cluster (executor/slurm) says so through
// small optional interfaces the worker checks: AllocatesGPUs (its scheduler
// picks the GPUs and sets CUDA_VISIBLE_DEVICES where the job runs),
// Capacity (the GPUs free in the cluster, which the worker's heartbeat
// offers), and DeliversWarning on a Process (the scheduler sends the job's
// warning signal). Its Exit carries the energy measured where the job ran
// (Exit.Energy: greenq meter's reading, or the cluster's accounting), and a
// run lost with its node wraps ErrLost, so the job is planned again rather
// than failed.
package executor
