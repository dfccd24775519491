package executor

import (
	"context"
	"io"
	"syscall"
	"time"
)

// Spec is one run of a job, as the worker prepared it.
type Spec struct {
	// JobID names the run (container names, scheduler job names).
	JobID string
	// Argv is the command and its arguments; Argv[0] is looked up in PATH.
	Argv []string
	// Env is the job's whole environment as NAME=value, built by the worker
	// (nothing of the executor's own environment is added).
	Env []string
	// Dir is the working directory, an existing absolute path.
	Dir string
	// Output receives the job's stdout and stderr, interleaved.
	Output io.Writer
	// GPUs are the host's GPU indices given to the job (PCI bus order).
	GPUs []int
	// Image is the OCI image to run Argv in; executors that run images
	// only.
	Image string
	// Mounts are host directories the job uses (workdir, checkpoint and
	// output directories, greenq's files); an executor that isolates the
	// file system makes each visible at the same path.
	Mounts []Mount
	// User runs the job as this user; nil means the worker's.
	User *User
}

// Mount is a host directory made visible to the job at the same path.
type Mount struct {
	Path     string
	ReadOnly bool
}

// User is a numeric identity to run a job as.
type User struct {
	UID, GID uint32
	Groups   []uint32
}

// Executor starts runs of jobs.
type Executor interface {
	// Start launches s and returns once the job is running (or could not
	// start: the error says why, and nothing is left running). ctx bounds
	// the start only; stopping is Process.Signal's.
	Start(ctx context.Context, s Spec) (Process, error)
}

// Process is a running job.
type Process interface {
	// Signal sends sig to the whole job: every process it started.
	Signal(sig syscall.Signal) error
	// Wait blocks until the job and everything it started have ended and
	// its output is written, and reports how it ended. It may be called
	// once.
	Wait() Exit
}

// Exit is how a run ended.
type Exit struct {
	// Code is the exit status; 128+N for a job killed by signal N, as a
	// shell reports it; -1 when unknown.
	Code int
	// CPU is the CPU time the job used, where the executor can tell (0
	// where it cannot); the worker's CPU energy share rests on it.
	CPU time.Duration
	// Err is set when the executor lost track of the job (it could not
	// wait for it); Code is then -1.
	Err error
}
