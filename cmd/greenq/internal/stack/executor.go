package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor/slurm"
)

// setExecutor builds the executor w.Executor names into wc; the process
// executor is worker.Config's default.
func (w *Worker) setExecutor(ctx context.Context, wc *worker.Config) error {
	switch w.Executor {
	case "", "process":
		return nil
	case "slurm":
		return w.setSlurm(ctx, wc)
	case "kubernetes":
		return w.setKubernetes(ctx, wc)
	}
	return greenq.Invalid("executor", "%q is not one of process, slurm, kubernetes", w.Executor)
}

// setSlurm makes the worker serve its region from a Slurm partition: jobs
// (with an image too, through the cluster's container support) become
// sbatch jobs; the worker's size is the partition's largest node and, by
// default, it keeps as many jobs in flight as the partition has GPUs; the
// run, work, output and checkpoint directories default to the spool, which
// the nodes share.
func (w *Worker) setSlurm(ctx context.Context, wc *worker.Config) error {
	if w.Slurm == nil || w.Slurm.Partition == "" {
		return greenq.Invalid("slurm-partition", "is required with --executor slurm")
	}
	sc := *w.Slurm
	sc.Logger = w.Logger
	// asynq gives a dead worker's task to another: the dead one's run must
	// not go on beside the new one.
	sc.ReplaceEarlierRuns = true
	switch w.SlurmMeter {
	case "":
		if exe, err := os.Executable(); err == nil {
			sc.Meter = exe
		}
	case "none":
		sc.Meter = ""
	default:
		sc.Meter = w.SlurmMeter
	}
	ex, err := slurm.New(ctx, sc)
	switch {
	case errors.Is(err, slurm.ErrNoPartition):
		return greenq.Invalid("slurm-partition", "%v", err)
	case err != nil && sc.Meter != "" && w.SlurmMeter != "" && errors.Is(err, slurm.ErrNoMeter):
		return greenq.Invalid("slurm-meter", "%v", err)
	case err != nil:
		return err
	}
	gc, err := ex.GPUCapacity(ctx)
	if err != nil {
		return fmt.Errorf("read the GPUs of Slurm partition %s: %w", sc.Partition, err)
	}
	if wc.GPUs <= 0 {
		wc.GPUs = max(gc.Largest, 1)
	}
	if wc.Concurrency <= 0 {
		wc.Concurrency = max(gc.Total, wc.GPUs)
	}
	under := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(ex.Spool(), name)
		}
	}
	under(&wc.RunRoot, "run")
	under(&wc.WorkRoot, "work")
	under(&wc.OutputRoot, "outputs")
	under(&wc.CheckpointRoot, "checkpoints")
	wc.Executor, wc.Containers = ex, ex
	w.Logger.Info("jobs run on Slurm", "partition", sc.Partition, "spool", ex.Spool(), "meter", sc.Meter,
		"largest_node_gpus", gc.Largest, "partition_gpus", gc.Total, "free_gpus", gc.Offered)
	return nil
}
