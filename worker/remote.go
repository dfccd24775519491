package worker

import (
	"context"

	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker/executor"
)

// A worker whose executor hands jobs to a cluster's scheduler (Slurm)
// does not run them on its own machine: the scheduler picks the node and
// its GPUs (executor.AllocatesGPUs), the job's energy is measured there
// (executor.Exit.Energy, from greenq meter or the cluster's accounting),
// and what the worker offers is what the cluster has free
// (executor.Capacity).

// acquireGPUs takes n GPUs from the worker's pool, or none for an executor
// that allocates GPUs itself: its scheduler queues the job until they are
// free.
func (w *Worker) acquireGPUs(ctx context.Context, n int) ([]int, error) {
	if executor.Allocates(w.cfg.Executor) {
		return nil, nil
	}
	return w.pool.acquire(ctx, n)
}

// clusterCapacity fills info's GPUs and Busy from the executor's cluster,
// where it has one: the GPUs free there plus those this worker's jobs hold,
// so that the planner never plans more than the cluster can take, and
// LargestNode, the most one job can get. When the cluster cannot be read,
// info keeps the configured size (GPUs: the largest node at start).
func (w *Worker) clusterCapacity(ctx context.Context, info *queue.WorkerInfo) {
	c, ok := w.cfg.Executor.(executor.Capacity)
	if !ok {
		return
	}
	gc, err := c.GPUCapacity(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("read the cluster's free GPUs", "err", err)
		}
		return
	}
	info.GPUs, info.Busy = max(gc.Offered, 0), max(min(gc.Busy, gc.Offered), 0)
	// One job gets at most a node's GPUs, whatever the cluster offers in
	// all: the region's MaxGPUsPerWorker is it, so submit refuses larger
	// jobs (the worker's size queues are its GPUs: the largest node at
	// start, stack.Worker).
	info.LargestNode = max(gc.Largest, 0)
}
