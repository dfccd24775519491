package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/executor"
)

// Environment variables a job sees.
const (
	EnvJobID         = "GREENQ_JOB_ID"
	EnvRegion        = "GREENQ_REGION"
	EnvTrial         = "GREENQ_TRIAL"
	EnvCheckpointDir = "GREENQ_CHECKPOINT_DIR"
	EnvOutputDir     = "GREENQ_OUTPUT_DIR"
	// EnvFunctionalUnitsFile names a file where the job may write how many
	// functional units (the job's FunctionalUnit, e.g. "1000 images") it
	// produced in all; the receipt's SCI is then per unit, else per job.
	EnvFunctionalUnitsFile = "GREENQ_FUNCTIONAL_UNITS_FILE"
	// EnvControlFile names a file where greenq writes, just before each
	// SIGTERM, why it stops the job: ControlPause (save a checkpoint and
	// exit; the job resumes later) or ControlStop (cancel, deadline).
	EnvControlFile = "GREENQ_CONTROL_FILE"
)

// Stop notices written to the control file, so that a job's SIGTERM
// handler can tell a pause (save and exit; greenq resumes the job later)
// from the end of the job (cancel, deadline).
const (
	ControlPause = "pause"
	ControlStop  = "stop"
)

// execute runs the job's command until it exits or is stopped. Every stop
// is SIGTERM, the job's grace, then SIGKILL.
func (w *Worker) execute(ctx context.Context, j *greenq.Job, gpus []int, r *runningJob) (res result) {
	now := w.clock.now()
	res = result{start: now, end: now, exitCode: -1}
	if !j.Deadline.IsZero() && !now.Before(j.Deadline) {
		res = w.notRun(fmt.Errorf("deadline %s passed before the job could start", j.Deadline.UTC().Format(time.RFC3339)))
		res.reason = stopDeadline
		return res
	}
	if len(j.Command) == 0 {
		return w.notRun(errors.New("job has no command"))
	}
	ex, err := w.executorFor(j)
	if err != nil {
		return w.notRun(err)
	}
	// An executor that picks GPUs itself (Slurm) runs the job on another
	// machine: the worker's meters cannot see it there.
	remote := executor.Allocates(ex)
	rd, err := w.prepare(ctx, j, gpus, remote, ownSecrets(ex))
	if err != nil {
		return w.notRun(err)
	}
	defer rd.cleanup()
	defer func() { res.units = readUnits(rd.unitsFile) }()

	sink := newLogSink(w.store, j.ID, w.cfg.LogBytes, w.log)
	sinkDone := make(chan struct{})
	sinkStopped := make(chan struct{})
	go func() { defer close(sinkStopped); sink.run(sinkDone) }()
	defer func() { close(sinkDone); <-sinkStopped }()
	rd.spec.Output = sink

	fallbackW := w.cfg.DefaultPowerW
	if j.PowerW > 0 {
		fallbackW = j.PowerW
	}
	var mt *Metering
	res.meter = MeterWorker
	if remote {
		// Without a reading from where it ran (Exit.Energy), the job's
		// GPUs are estimated: the worker has none of them.
		mt = StartMetering(&EstimateMeter{Now: w.clock.now}, w.cpu, make([]int, max(j.GPUs, 0)), fallbackW)
		res.meter = MeterNone
	} else {
		mt = StartMetering(w.meter, w.cpu, gpus, fallbackW)
	}
	res.start = w.clock.now()
	proc, err := ex.Start(ctx, rd.spec)
	if err != nil {
		res.end = w.clock.now()
		res.gpu, res.cpu = mt.Stop(0)
		res.exitCode = 127
		res.startErr = err
		fmt.Fprintf(sink, "greenq: %v\n", err)
		return res
	}
	exited := make(chan executor.Exit, 1)
	go func() { exited <- proc.Wait() }()

	exit := w.supervise(ctx, j, proc, rd, r, exited, &res)
	res.end = w.clock.now()
	res.outputs = w.saveFiles(ctx, j, rd, sink)
	res.exitCode = exit.Code
	res.gpu, res.cpu = mt.Stop(exit.CPU)
	if e := exit.Energy; e != nil {
		res.gpu, res.cpu = readingParts(*e)
		res.meter = e.Meter
	}
	switch {
	case exit.Err == nil || res.reason != stopNone:
	case errors.Is(exit.Err, executor.ErrLost):
		// Not the job's doing: it is planned again, as a paused job is
		// (an interruptible one resumes from its checkpoint).
		res.reason = stopPause
		w.log.Warn("job's run was lost with its node; planning it again", "job", j.ID, "err", exit.Err)
		fmt.Fprintf(sink, "greenq: %v; the job is planned again\n", exit.Err)
	default:
		res.startErr = exit.Err
	}
	return res
}

// supervise waits for the job to exit, stopping it when greenq must: the
// deadline, a cancel, a lost task, the end of a segment, a drain. It sends
// the job's warning signal before the deadline when asked.
func (w *Worker) supervise(ctx context.Context, j *greenq.Job, proc executor.Process, rd *runDirs,
	r *runningJob, exited <-chan executor.Exit, res *result) executor.Exit {
	grace := j.Grace(w.cfg.Grace)
	var timers []*time.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	timer := func(at time.Time) <-chan time.Time {
		if at.IsZero() {
			return nil
		}
		t := time.NewTimer(at.Sub(w.clock.now()))
		timers = append(timers, t)
		return t.C
	}
	deadline := timer(j.Deadline)
	var warn <-chan time.Time
	if j.WarnSignal != "" && !j.Deadline.IsZero() && !executor.DeliversWarning(proc) {
		warn = timer(j.Deadline.Add(-time.Duration(j.WarnBeforeS) * time.Second))
	}
	var segEnd <-chan time.Time
	if end, ok := pauseAt(j, res.start); ok {
		segEnd = timer(end)
	}
	draining := w.draining
	if !j.Interruptible {
		draining = nil // let it finish within Grace; abandon stops it after that
	}
	var kill <-chan time.Time
	// stop starts SIGTERM → grace → SIGKILL once; a later, stronger reason
	// (a cancel during a pause) replaces the recorded one.
	stop := func(reason stopReason) {
		if res.reason == stopNone || res.reason == stopPause || res.reason == stopContext {
			res.reason = reason
		}
		if kill != nil {
			return
		}
		notice := ControlStop
		if reason == stopPause {
			notice = ControlPause
		}
		_ = os.WriteFile(rd.controlFile, []byte(notice+"\n"), 0o644)
		if err := term(proc, reason == stopPause); err != nil {
			w.log.Warn("signal job", "job", j.ID, "signal", "TERM", "err", err)
		}
		kill = timer(w.clock.now().Add(grace))
	}
	ctxDone, cancelled, abandon := ctx.Done(), r.cancel, w.abandon
	for {
		select {
		case exit := <-exited:
			return exit
		case <-ctxDone:
			ctxDone = nil
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				stop(stopDeadline)
			} else {
				stop(stopContext)
			}
		case <-cancelled:
			cancelled = nil
			stop(stopCancel)
		case <-deadline:
			deadline = nil
			stop(stopDeadline)
		case <-warn:
			warn = nil
			if err := proc.Signal(warnSignals[j.WarnSignal]); err != nil {
				w.log.Warn("signal job", "job", j.ID, "signal", j.WarnSignal, "err", err)
			}
		case <-abandon:
			abandon = nil
			stop(stopAbandon)
		case <-segEnd:
			segEnd, draining = nil, nil
			stop(stopPause)
		case <-draining:
			segEnd, draining = nil, nil
			stop(stopPause)
		case <-kill:
			kill = nil
			if err := proc.Signal(syscall.SIGKILL); err != nil {
				w.log.Warn("signal job", "job", j.ID, "signal", "KILL", "err", err)
			}
		}
	}
}

// warnSignals maps greenq.WarnSignals to this platform's signals.
var warnSignals = map[string]syscall.Signal{
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM,
	"INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
}

// executorFor picks the executor of j: the container one for a job with an
// image, the worker's own otherwise.
func (w *Worker) executorFor(j *greenq.Job) (executor.Executor, error) {
	if j.Image == "" {
		return w.cfg.Executor, nil
	}
	if w.cfg.Containers == nil {
		return nil, fmt.Errorf("job needs image %s but worker %s has no container engine (install podman or docker, or set --container-engine)", j.Image, w.cfg.ID)
	}
	return w.cfg.Containers, nil
}

// runDirs are the directories and files of one run, and the Spec that
// starts it.
type runDirs struct {
	spec          executor.Spec
	unitsFile     string
	controlFile   string
	outputDir     string
	checkpointDir string   // "" for a job that is not interruptible
	remove        []string // made for this run only
}

func (rd *runDirs) cleanup() {
	for _, d := range rd.remove {
		_ = os.RemoveAll(d)
	}
}

// prepare resolves the job's secrets and makes its directories: a private
// one for greenq's files, the workdir (the job's own, or a fresh one), the
// output directory and, for an interruptible job, its checkpoint directory.
// For an executor that allocates GPUs itself (remote), CUDA_VISIBLE_DEVICES
// is left to its scheduler. For an executor with its own secret store
// (secretsByName) the secrets are passed by name, not resolved here.
func (w *Worker) prepare(ctx context.Context, j *greenq.Job, gpus []int, remote, secretsByName bool) (*runDirs, error) {
	var secrets map[string]string
	if !secretsByName {
		var err error
		if secrets, err = w.secrets.resolve(j.Secrets); err != nil {
			return nil, err
		}
	}
	rd := &runDirs{}
	ok := false
	defer func() {
		if !ok {
			rd.cleanup()
		}
	}()
	if err := os.MkdirAll(w.cfg.RunRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create run root: %w", err)
	}
	private, err := os.MkdirTemp(w.cfg.RunRoot, "greenq-run-")
	if err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	rd.remove = append(rd.remove, private)
	rd.unitsFile = filepath.Join(private, "functional-units")
	// The control file is the worker's, in a directory the job may read
	// but not change: a job that could replace it (with a link) would have
	// a root worker write where it points.
	ctl, err := os.MkdirTemp(w.cfg.RunRoot, "greenq-ctl-")
	if err != nil {
		return nil, fmt.Errorf("create control dir: %w", err)
	}
	rd.remove = append(rd.remove, ctl)
	rd.controlFile = filepath.Join(ctl, "control")
	if err := os.Chmod(ctl, 0o755); err != nil {
		return nil, fmt.Errorf("create control dir: %w", err)
	}
	if err := os.WriteFile(rd.controlFile, nil, 0o644); err != nil {
		return nil, fmt.Errorf("create control file: %w", err)
	}
	own := []string{private}

	dir := j.Workdir
	switch {
	case dir == "":
		if err := os.MkdirAll(w.cfg.WorkRoot, 0o755); err != nil {
			return nil, fmt.Errorf("create work root: %w", err)
		}
		if dir, err = os.MkdirTemp(w.cfg.WorkRoot, j.ID+"-"); err != nil {
			return nil, fmt.Errorf("create workdir: %w", err)
		}
		rd.remove = append(rd.remove, dir)
		own = append(own, dir)
	case j.Image == "":
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("workdir %s does not exist on worker %s (it must be on storage the region's workers share)", dir, w.cfg.ID)
		}
	}
	out := w.outputs.Dir(j.ID, filepath.Join(private, "outputs"))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	rd.outputDir = out
	own = append(own, out)
	vars := map[string]string{
		EnvJobID: j.ID, EnvRegion: w.cfg.Region, EnvTrial: strconv.Itoa(j.Trial),
		EnvOutputDir: out, EnvFunctionalUnitsFile: rd.unitsFile, EnvControlFile: rd.controlFile,
		"CUDA_VISIBLE_DEVICES": joinInts(gpus),
		// NVML numbers GPUs in PCI bus order; make CUDA agree.
		"CUDA_DEVICE_ORDER": "PCI_BUS_ID",
	}
	if remote {
		delete(vars, "CUDA_VISIBLE_DEVICES") // the scheduler's, where the job runs
	}
	mounts := []executor.Mount{{Path: private}, {Path: ctl, ReadOnly: true}, {Path: out}}
	if j.Interruptible {
		cp := w.checkpoints.Dir(j.ID, filepath.Join(private, "checkpoint"))
		if err := w.checkpoints.Pull(ctx, j.ID, cp); err != nil {
			return nil, fmt.Errorf("fetch checkpoint from %s: %w", w.checkpoints, err)
		}
		rd.checkpointDir = cp
		vars[EnvCheckpointDir] = cp
		own = append(own, cp)
		mounts = append(mounts, executor.Mount{Path: cp})
	}
	if j.Image == "" || j.Workdir == "" || dirExists(j.Workdir) {
		mounts = append(mounts, executor.Mount{Path: dir})
	}
	if err := w.runAs.chownTrees(own...); err != nil {
		return nil, err
	}
	rd.spec = executor.Spec{JobID: j.ID, Argv: j.Command, Env: w.jobEnv(j, secrets, vars), Dir: dir,
		GPUs: gpus, Image: j.Image, Mounts: mounts, User: w.runAs.user(),
		GPUCount: max(j.GPUs, 0), Deadline: j.Deadline, Estimate: j.Duration(), Grace: j.Grace(w.cfg.Grace)}
	if secretsByName {
		rd.spec.Secrets = j.Secrets
	}
	if sig, ok := warnSignals[j.WarnSignal]; ok && !j.Deadline.IsZero() {
		rd.spec.Warn = executor.Warning{Signal: sig, Before: time.Duration(j.WarnBeforeS) * time.Second}
	}
	ok = true
	return rd, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// ownSecrets reports whether ex takes secrets from its own store
// (executor.ResolvesSecrets).
func ownSecrets(ex executor.Executor) bool {
	r, ok := ex.(executor.ResolvesSecrets)
	return ok && r.ResolvesSecrets()
}

// term sends the SIGTERM of a stop; for a pause, a Process that pauses
// its own way (executor.Pauser) does so instead.
func term(proc executor.Process, pause bool) error {
	if p, ok := proc.(executor.Pauser); ok && pause {
		return p.Pause()
	}
	return proc.Signal(syscall.SIGTERM)
}
