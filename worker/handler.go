package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/queue"
	"github.com/hibiken/asynq"
)

// Outcomes, as counted in greenq_worker_jobs_total.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
	OutcomePaused    = "paused"    // interruptible job paused, planned again
	OutcomeAbandoned = "abandoned" // worker stopped; asynq hands the task to another worker
)

// stopReason is why the worker ended a job's process.
type stopReason int

const (
	stopNone     stopReason = iota // it exited by itself
	stopCancel                     // user cancel (event or poll)
	stopContext                    // asynq cancelled the task's context
	stopDeadline                   // the job's deadline passed
	stopPause                      // segment end or worker stopping: interruptible job paused
	stopAbandon                    // worker stopped; asynq requeued the task
)

// ProcessTask implements asynq.Handler for queue.TaskTypeRun. It returns
// nil for every outcome that is recorded on the job (the record is the
// truth; asynq must not run the job again), a SkipRetry error for a bad
// task, and a plain error only when the job could not be started because
// the store failed, or it needs more GPUs than this worker has and could
// not be handed back to its size queue (handBack), so that asynq tries
// again later.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	w.handlers.Add(1)
	defer w.handlers.Done()
	if t.Type() != queue.TaskTypeRun {
		return fmt.Errorf("process task: unknown type %q: %w", t.Type(), asynq.SkipRetry)
	}
	var p queue.RunPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.JobID == "" {
		return fmt.Errorf("process task: payload %q is not {\"job_id\": ...}: %w", t.Payload(), asynq.SkipRetry)
	}
	return w.runJob(ctx, p.JobID, p.Release)
}

// runJob runs job id for a task of release number release: it loads the
// job (loadRunnable), takes its GPUs, marks it started, runs it (execute)
// and reports how it ended (report).
func (w *Worker) runJob(ctx context.Context, id string, release int) error {
	log := w.log.With("job", id)
	j, ok, err := w.loadRunnable(ctx, log, id, release)
	if !ok || err != nil {
		return err
	}
	gpus, unrunnable := w.acquireGPUs(ctx, max(j.GPUs, 0))
	if unrunnable != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for gpus: %w", unrunnable)
		}
		// The last resort, which dispatch never reaches: more GPUs than
		// this worker has, on a task it could not hand back. It is
		// started and failed so that the record says why.
		gpus = nil
	}
	defer func() {
		if gpus != nil {
			w.pool.release(gpus)
		}
		w.metrics.busy.WithLabelValues(w.cfg.Region, w.cfg.ID).Set(float64(w.pool.busy()))
	}()
	w.metrics.busy.WithLabelValues(w.cfg.Region, w.cfg.ID).Set(float64(w.pool.busy()))

	j, err = w.start(ctx, id, gpus, release)
	if err != nil {
		if greenq.ErrorCodeOf(err) == greenq.CodeConflict || greenq.ErrorCodeOf(err) == greenq.CodeNotFound {
			// Cancelled or finished meanwhile: never run it.
			log.Info("job not started", "reason", err)
			return nil
		}
		return fmt.Errorf("start job %s: %w", id, err)
	}
	log.Info("job started", "gpus", gpus, "attempt", j.Attempts, "argv0", first(j.Command))

	r, untrack := w.track(id)
	defer untrack()
	var res result
	if unrunnable != nil {
		res = w.notRun(unrunnable)
	} else {
		res = w.execute(ctx, j, gpus, r)
	}
	w.report(ctx, log, j, w.settleContext(ctx, id, res))
	return nil
}

// Start waits: the release loop enqueues a task before it marks the job
// released, so a quick worker can be handed the task in between.
const (
	startWaitStep  = 20 * time.Millisecond
	startWaitSteps = 100
)

// start marks job id started (Store.Start). While the job's release is
// still under way (queue.ErrReleasing) it tries again every startWaitStep,
// up to startWaitSteps times; then the error goes to asynq, which retries
// the task later, so the task is never dropped.
func (w *Worker) start(ctx context.Context, id string, gpus []int, release int) (*greenq.Job, error) {
	for i := 0; ; i++ {
		j, err := w.store.Start(ctx, id, greenq.Run{Region: w.cfg.Region, Worker: w.cfg.ID,
			StartedAt: w.clock.now(), GPUIndices: gpus, Release: release})
		if !errors.Is(err, queue.ErrReleasing) || i == startWaitSteps-1 {
			return j, err
		}
		if err := w.clock.sleep(ctx, startWaitStep); err != nil {
			return nil, err
		}
	}
}

// loadRunnable reads job id and reports whether this worker should run
// it: not a job that is gone or final, nor one larger than the worker
// that it handed back to its size queue (handBack). An error makes asynq
// try the task again.
func (w *Worker) loadRunnable(ctx context.Context, log *slog.Logger, id string, release int) (*greenq.Job, bool, error) {
	j, err := w.store.Get(ctx, "", id)
	if err != nil {
		if greenq.ErrorCodeOf(err) == greenq.CodeNotFound {
			log.Warn("released job does not exist; dropping its task")
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read job %s: %w", id, err)
	}
	if j.State.Final() {
		return nil, false, nil
	}
	if max(j.GPUs, 0) > w.cfg.GPUs {
		if moved, err := w.handBack(ctx, j, release); moved || err != nil {
			return nil, false, err
		}
	}
	return j, true, nil
}

// track registers job id as running (for cancels) until untrack.
func (w *Worker) track(id string) (r *runningJob, untrack func()) {
	r = newRunningJob()
	w.mu.Lock()
	w.running[id] = r
	w.mu.Unlock()
	return r, func() {
		w.mu.Lock()
		delete(w.running, id)
		w.mu.Unlock()
	}
}

// settleContext tells what a stop by asynq's cancelled context was.
// asynq cancels a task's context for a user's cancel (CancelProcessing)
// and when the worker lost its lease; only the record tells them apart. A
// lost lease means asynq runs the task again, so nothing is reported then
// (stopAbandon).
func (w *Worker) settleContext(ctx context.Context, id string, res result) result {
	if res.reason != stopContext {
		return res
	}
	res.reason = stopAbandon
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if cur, err := w.store.Get(gctx, "", id); err == nil && cur.State == greenq.StateCancelled {
		res.reason = stopCancel
	}
	return res
}

// report records how j's run ended (finish), drops the checkpoint of an
// interruptible job that is done, and counts the outcome. An abandoned
// run is not reported: asynq runs its task again.
func (w *Worker) report(ctx context.Context, log *slog.Logger, j *greenq.Job, res result) {
	if res.reason == stopAbandon {
		w.metrics.jobs.WithLabelValues(w.cfg.Region, OutcomeAbandoned).Inc()
		log.Warn("job killed: the worker is stopping or lost the task; asynq runs it again")
		return
	}
	f := w.finishRequest(ctx, j, res)
	w.finish(log, j.ID, f)
	if j.Interruptible && (f.State == greenq.StateSucceeded || f.State == greenq.StateCancelled) {
		w.dropCheckpoint(ctx, j.ID)
	}
	outcome := string(f.State)
	if f.State == greenq.StatePlanned {
		outcome = OutcomePaused
	}
	w.metrics.jobs.WithLabelValues(w.cfg.Region, outcome).Inc()
	w.metrics.energy.WithLabelValues(w.cfg.Region, string(res.gpu.Source)).Add(f.Segment.EnergyKWh)
	w.metrics.nvmlErrors.WithLabelValues(w.cfg.Region).Add(float64(res.gpu.ReadErrors))
	if f.Receipt != nil {
		w.metrics.gco2.WithLabelValues(w.cfg.Region).Add(f.Receipt.GCO2)
		// A counter only goes up (Add panics on a negative value), and a
		// job can emit more than its baseline: that goes to excess.
		if s := f.Receipt.SavedGCO2; s >= 0 {
			w.metrics.saved.WithLabelValues(w.cfg.Region).Add(s)
		} else {
			w.metrics.excess.WithLabelValues(w.cfg.Region).Add(-s)
		}
	}
	log.Info("job ended", "state", f.State, "exit_code", f.ExitCode, "energy_kwh", f.Segment.EnergyKWh,
		"energy_source", res.gpu.Source, "energy_meter", res.meter, "err", f.Error)
}

// handBack deals with a task for job j that needs more GPUs than this
// worker has. Dispatch never hands it one (the worker serves only the size
// queues it can run, queue.WorkerQueues), but a task released before size
// queues existed, or put on the region queue by hand, can reach it. The
// task is moved to the job's size queue (queue.Redispatch), where a worker
// large enough takes it, and moved is true: the caller drops this task.
// When it cannot be moved, the error makes asynq try the task again (maybe
// on a larger worker of the region, which also serves the region queue);
// on the last attempt, or outside an asynq server (lastAttempt), both are
// zero and the caller fails the job with the reason.
func (w *Worker) handBack(ctx context.Context, j *greenq.Job, release int) (moved bool, err error) {
	err = errors.New("no queue client (the worker is not running)")
	if w.enq != nil {
		err = queue.Redispatch(ctx, w.enq, j, w.cfg.Region, release)
	}
	if err == nil {
		w.log.Info("handed back a job larger than this worker", "job", j.ID, "gpus", j.GPUs, "worker_gpus", w.cfg.GPUs,
			"queue", queue.SizeQueue(w.cfg.Region, j.GPUs))
		return true, nil
	}
	if lastAttempt(ctx) {
		return false, nil
	}
	return false, fmt.Errorf("hand back job %s (%d GPUs; this worker has %d): %w", j.ID, j.GPUs, w.cfg.GPUs, err)
}

// lastAttempt reports whether asynq will not run the task of ctx again
// after this attempt; true outside an asynq server.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return !ok1 || !ok2 || n >= m
}

// finishAttempts and finishBackoff bound finish's retries: 200 ms, 400 ms,
// … between attempts, on the worker's clock.
const (
	finishAttempts = 5
	finishBackoff  = 200 * time.Millisecond
)

// finish reports the end of a run, retrying a few times on the worker's
// clock: the job has run and must not run again just because the store
// blinked. The retries end with the worker (w.life: once asynq has given
// unfinished tasks back, abandonRunning); a report never made leaves the
// job running in its record, and asynq's lease recovery runs its task
// again, as for a worker that died.
func (w *Worker) finish(log *slog.Logger, id string, f queue.FinishRequest) {
	var err error
	for attempt := range finishAttempts {
		ctx, cancel := context.WithTimeout(w.life, 10*time.Second)
		_, err = w.store.Finish(ctx, id, f)
		cancel()
		if err == nil || greenq.ErrorCodeOf(err) == greenq.CodeConflict || greenq.ErrorCodeOf(err) == greenq.CodeNotFound {
			return
		}
		if attempt == finishAttempts-1 || w.clock.sleep(w.life, time.Duration(attempt+1)*finishBackoff) != nil {
			break
		}
	}
	log.Error("report job end; asynq runs the job again", "state", f.State, "err", err, "worker_stopped", w.life.Err() != nil)
}

// result is what one run of a job's process came to.
type result struct {
	start, end time.Time
	exitCode   int
	startErr   error
	reason     stopReason
	gpu        GPUReading
	cpu        CPUReading
	units      float64 // functional units the job reported; 0 = none
	outputs    *greenq.Outputs
	meter      string // where the energy was measured: MeterWorker, …
}

// readUnits reads the count a job wrote to its functional-units file.
func readUnits(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}

// notRun is the result of a job that could not be started: no energy.
func (w *Worker) notRun(err error) result {
	now := w.clock.now()
	return result{start: now, end: now, exitCode: -1, startErr: err,
		gpu: GPUReading{Source: SourceEstimate, Model: w.meter.Model()},
		cpu: CPUReading{Source: SourceEstimate}}
}

// pauseAt returns when an interruptible job's current planned segment
// ends, if a later segment follows it (the last one runs to completion).
func pauseAt(j *greenq.Job, now time.Time) (time.Time, bool) {
	if !j.Interruptible || j.Plan == nil {
		return time.Time{}, false
	}
	segs := j.Plan.Segments
	for i, s := range segs {
		if s.End.After(now) {
			return s.End, i < len(segs)-1
		}
	}
	return time.Time{}, false
}

// finishRequest turns a run's result into the report for the store.
func (w *Worker) finishRequest(ctx context.Context, j *greenq.Job, res result) queue.FinishRequest {
	seg := greenq.RunSegment{Region: w.cfg.Region, Worker: w.cfg.ID, Start: res.start, End: res.end,
		EnergyKWh: res.gpu.KWh + res.cpu.CPUKWh + res.cpu.RAMKWh}
	f := queue.FinishRequest{ExitCode: res.exitCode, Segment: seg, Outputs: res.outputs}
	switch {
	case res.reason == stopCancel:
		f.State, f.Error = greenq.StateCancelled, "cancelled while running"
	case res.reason == stopDeadline:
		f.State = greenq.StateFailed
		if res.startErr != nil {
			f.Error = res.startErr.Error()
		} else {
			f.Error = fmt.Sprintf("deadline %s passed: the job was killed after running %s",
				j.Deadline.UTC().Format(time.RFC3339), res.end.Sub(res.start).Round(time.Second))
		}
	case res.startErr != nil:
		f.State, f.Error = greenq.StateFailed, res.startErr.Error()
	case res.reason == stopPause:
		// greenq asked it to pause: whatever it exited with (it saved and
		// exited 0, or was killed after its grace), it resumes later from
		// its checkpoint; it is never taken for finished.
		f.State = greenq.StatePlanned
		return f // paused: no receipt until the job ends
	case res.exitCode == 0:
		f.State = greenq.StateSucceeded
	default:
		f.State, f.Error = greenq.StateFailed, fmt.Sprintf("exit status %d", res.exitCode)
	}
	rc := w.receipt(ctx, j, res)
	f.Receipt = &rc
	return f
}

// receipt computes the job's receipt over all its segments: those recorded
// before this run (by their total energy) and this one.
func (w *Worker) receipt(ctx context.Context, j *greenq.Job, res result) greenq.Receipt {
	var segs []SegmentEnergy
	for _, s := range j.Segments {
		segs = append(segs, SegmentEnergy{Region: s.Region, Start: s.Start, End: s.End, OtherKWh: s.EnergyKWh})
	}
	segs = append(segs, SegmentEnergy{Region: w.cfg.Region, Start: res.start, End: res.end,
		GPUKWh: res.gpu.KWh, CPUKWh: res.cpu.CPUKWh, RAMKWh: res.cpu.RAMKWh})
	regions := map[string]bool{}
	for _, s := range segs {
		regions[s.Region] = true
	}
	home := j.HomeRegion
	if home == "" && j.Plan != nil {
		home = j.Plan.Baseline.Region
	}
	if home != "" {
		regions[home] = true
	}
	series := map[string]forecast.Series{}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for r := range regions {
		s, err := w.store.Series(sctx, r)
		if err != nil {
			w.log.Warn("read series for receipt", "job", j.ID, "series_region", r, "err", err)
			continue
		}
		if len(s.Points) > 0 {
			series[r] = s
		}
	}
	return ComputeReceipt(ReceiptInput{
		Segments: segs, Series: series, Regions: w.regionFacts(sctx), PUE: w.cfg.PUE, Plan: j.Plan, GPUs: j.GPUs,
		Home: home, SubmittedAt: j.SubmittedAt,
		EmbodiedGCO2PerGPUHour: w.cfg.EmbodiedGCO2PerGPUHour,
		FunctionalUnit:         j.FunctionalUnit,
		FunctionalUnits:        res.units,
		EnergySource:           res.gpu.Source, CPUEnergySource: res.cpu.Source,
		GPUModel: res.gpu.Model, GPUUtilizationPct: res.gpu.UtilizationPct, GPUMemoryUsedMiB: res.gpu.MemoryUsedMiB,
		GPUUtilizationSamples: res.gpu.UtilizationSamples,
		EnergyMeter:           res.meter,
	})
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}
