package executor

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/greenq/greenq"
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
	// Deadline is when the job must have ended; zero for none. The worker
	// stops the job itself then; an executor that hands the job to a
	// cluster's scheduler passes it on too, so that the job ends even when
	// the worker is gone.
	Deadline time.Time
	// Grace is the job's time between SIGTERM and SIGKILL, for an executor
	// whose cluster sends the signals itself (a pod's
	// terminationGracePeriodSeconds); zero for the cluster's default.
	Grace time.Duration
	// Secrets maps a variable to the name of a secret, for an executor
	// that takes secrets from its own store (ResolvesSecrets); for the
	// others it is nil and the values are in Env.
	Secrets map[string]string
	// GPUCount is how many GPUs the job needs: len(GPUs) for an executor
	// that is handed GPUs, the count to ask for from one that allocates
	// them itself (AllocatesGPUs), which gets no GPUs.
	GPUCount int
	// Estimate is the job's expected run time (0: unknown); an executor
	// whose scheduler takes a time limit (Slurm's --time) sets one from
	// it, never past Deadline.
	Estimate time.Duration
	// ReadingFile is where greenq meter, wrapping the command where the
	// job runs, writes its reading (--out), in a directory of Mounts; an
	// executor that wraps commands in greenq meter and whose nodes see the
	// worker's files reads it back into Exit.Energy. Set for an executor
	// that AllocatesGPUs only.
	ReadingFile string
	// Warn is the signal the job asked for before it is stopped (Signal 0:
	// none). The worker sends it itself, Before the deadline, unless the
	// Process delivers it (DeliversWarning).
	Warn Warning
}

// Warning is a signal sent to a job some time before it is stopped, as
// Slurm's --signal.
type Warning struct {
	Signal syscall.Signal
	Before time.Duration
}

// AllocatesGPUs is implemented by executors whose scheduler picks a job's
// GPUs (Slurm's --gres): the worker hands them no GPU indices (Spec.GPUs
// is empty, Spec.GPUCount says how many) and sets no CUDA_VISIBLE_DEVICES,
// which the scheduler sets where the job runs.
type AllocatesGPUs interface {
	AllocatesGPUs() bool
}

// Allocates reports whether ex picks GPUs itself (AllocatesGPUs).
func Allocates(ex Executor) bool {
	a, ok := ex.(AllocatesGPUs)
	return ok && a.AllocatesGPUs()
}

// GPUCapacity is what an executor's cluster offers now.
type GPUCapacity struct {
	// Offered is the GPUs jobs of this executor can use now: the ones free
	// in the cluster plus the ones its own jobs hold or wait for.
	Offered int
	// Busy is the GPUs this executor's own jobs hold or wait for.
	Busy int
	// Largest is the most GPUs one job can get (the largest node).
	Largest int
	// Total is all the GPUs of the cluster's nodes, free or not.
	Total int
}

// Capacity is implemented by executors that run jobs on a cluster whose
// free GPUs change under other users' work; the worker publishes it in its
// heartbeat, so that the planner never plans more than the cluster takes.
type Capacity interface {
	GPUCapacity(ctx context.Context) (GPUCapacity, error)
}

// DeliversWarning reports whether p sends the job's Spec.Warn signal
// itself (Slurm's --signal), so that the worker does not send it too.
func DeliversWarning(p Process) bool {
	d, ok := p.(interface{ DeliversWarning() bool })
	return ok && d.DeliversWarning()
}

// ResolvesSecrets is implemented by an Executor that takes a job's
// secrets from its own store (the Kubernetes executor: a Secret, by
// secretKeyRef). The worker then resolves none itself: the values stay
// out of Spec.Env, and Spec.Secrets names them.
type ResolvesSecrets interface {
	ResolvesSecrets() bool
}

// Pauser is implemented by a Process that stops a job for a pause its own
// way (the Kubernetes executor suspends its Job). For a pause the worker
// calls Pause instead of Signal(SIGTERM); its grace and SIGKILL follow as
// for any stop.
type Pauser interface {
	Pause() error
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
	// wait for it), or when a cluster could not start the job after Start
	// had handed it over (an image it cannot pull, a missing secret); Code
	// is then -1. An Err that wraps ErrLost means the run ended with the
	// machine under it: the worker plans the job again.
	Err error
	// Energy is what was measured where the job ran (greenq meter on a
	// cluster node, or the cluster's own accounting); nil when the
	// executor measured nothing and the worker's own meters count.
	Energy *Reading
}

// ErrLost is wrapped by an Exit.Err when the run ended because the machine
// under it did — a node failure, a preemption, a requeue by the cluster —
// not because of the job: the worker plans the job again instead of
// failing it.
var ErrLost = errors.New("the run was lost with its node")

// Reading is the energy a job used, as measured where it ran (greenq meter
// writes one as JSON; a Slurm cluster's accounting gives one): the root
// package's greenq.EnergyReading, which the API also takes.
type Reading = greenq.EnergyReading
