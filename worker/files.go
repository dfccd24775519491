package worker

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/greenq/greenq"
)

// saveFiles stores what a run left: its checkpoint (an interruptible job's,
// mirrored so the next segment, anywhere, starts from it) and its outputs,
// and lists the outputs for the job's record. A failure is said in the
// job's log; the outcome of the run stands.
func (w *Worker) saveFiles(ctx context.Context, j *greenq.Job, rd *runDirs, log io.Writer) *greenq.Outputs {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	if rd.checkpointDir != "" {
		if err := w.checkpoints.Push(ctx, j.ID, rd.checkpointDir); err != nil {
			fmt.Fprintf(log, "greenq: could not save the checkpoint to %s: %v\n", w.checkpoints, err)
			w.log.Error("save checkpoint", "job", j.ID, "err", err)
		}
	}
	if err := w.outputs.Upload(ctx, j.ID, rd.outputDir); err != nil {
		fmt.Fprintf(log, "greenq: could not save the outputs to %s: %v\n", w.outputs, err)
		w.log.Error("save outputs", "job", j.ID, "err", err)
	}
	files, err := w.outputs.List(ctx, j.ID)
	if err != nil {
		w.log.Warn("list outputs", "job", j.ID, "err", err)
		return nil
	}
	out := &greenq.Outputs{Location: w.outputs.Where(j.ID), Files: []greenq.OutputFile{}}
	for _, f := range files {
		out.Files = append(out.Files, greenq.OutputFile{Path: f.Path, Bytes: f.Bytes})
		out.Bytes += f.Bytes
	}
	return out
}

// dropCheckpoint deletes the checkpoint of a job that has ended well.
func (w *Worker) dropCheckpoint(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := w.checkpoints.Delete(ctx, id); err != nil {
		w.log.Warn("delete checkpoint", "job", id, "err", err)
	}
}

// sweepCheckpoints deletes checkpoints untouched for CheckpointRetention
// whose jobs have ended (failed ones are kept that long for a look) or no
// longer exist. A paused job's checkpoint is never touched.
func (w *Worker) sweepCheckpoints(ctx context.Context) {
	jobs, err := w.checkpoints.Jobs(ctx)
	if err != nil {
		w.log.Warn("list checkpoints", "err", err)
		return
	}
	cutoff := w.clock.now().Add(-w.cfg.CheckpointRetention)
	for id, touched := range jobs {
		if touched.After(cutoff) {
			continue
		}
		j, err := w.store.Get(ctx, "", id)
		switch {
		case err == nil && !j.State.Final():
			continue
		case err != nil && greenq.ErrorCodeOf(err) != greenq.CodeNotFound:
			continue // the store is down: keep it
		}
		w.log.Info("deleting old checkpoint", "job", id, "touched", touched)
		w.dropCheckpoint(ctx, id)
	}
}
