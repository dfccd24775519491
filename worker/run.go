package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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
	// EnvJobToken is the run's job token, with which greenq meter posts
	// the run's energy reading to EnvAPIURL; set only for an executor that
	// runs the job elsewhere, when Config.APIURL is.
	EnvJobToken = "GREENQ_JOB_TOKEN"
	// EnvAPIURL is Config.APIURL, set with EnvJobToken.
	EnvAPIURL = "GREENQ_API_URL"
)

// Stop notices written to the control file, so that a job's SIGTERM
// handler can tell a pause (save and exit; greenq resumes the job later)
// from the end of the job (cancel, deadline).
const (
	ControlPause = "pause"
	ControlStop  = "stop"
)

// execute runs the job's command until it exits or is stopped. Every stop
// is SIGTERM, the job's grace, then SIGKILL. It sets the run up (setUp),
// meters it (startMeter), starts and supervises it (supervise), then reads
// its energy (collectEnergy) and how it ended (exitReason).
func (w *Worker) execute(ctx context.Context, j *greenq.Job, gpus []int, r *runningJob) (res result) {
	ex, rd, res, ok := w.setUp(ctx, j, gpus)
	if !ok {
		return res
	}
	defer rd.cleanup()
	defer func() { res.units = readUnits(rd.unitsFile) }()

	sink := newLogSink(w.store, j.ID, w.cfg.LogBytes, w.log)
	sinkDone := make(chan struct{})
	sinkStopped := make(chan struct{})
	go func() { defer close(sinkStopped); sink.run(sinkDone) }()
	defer func() { close(sinkDone); <-sinkStopped }()
	rd.spec.Output = sink

	mt := w.startMeter(j, gpus, rd.remote, &res)
	res.start = w.clock.now()
	proc, err := ex.Start(ctx, rd.spec)
	if err != nil {
		res.end = w.clock.now()
		res.gpu, res.cpu = mt.Stop(0)
		res.exitCode = 127
		res.startErr = err
		fmt.Fprintf(sink, "greenq: %v\n", err)
		w.takePosted(ctx, j.ID, rd) // revokes the token
		return res
	}
	exited := make(chan executor.Exit, 1)
	go func() { exited <- proc.Wait() }()

	exit := w.supervise(ctx, j, proc, rd, r, exited, &res)
	res.end = w.clock.now()
	res.outputs = w.saveFiles(ctx, j, rd, sink)
	res.exitCode = exit.Code
	w.collectEnergy(ctx, j.ID, exit, mt, rd, &res)
	w.exitReason(j, exit, sink, &res)
	return res
}

// setUp checks that j can start now and prepares its run; without ok, res
// is the result of a run that never started.
func (w *Worker) setUp(ctx context.Context, j *greenq.Job, gpus []int) (ex executor.Executor, rd *runDirs, res result, ok bool) {
	now := w.clock.now()
	if !j.Deadline.IsZero() && !now.Before(j.Deadline) {
		res = w.notRun(fmt.Errorf("deadline %s passed before the job could start", j.Deadline.UTC().Format(time.RFC3339)))
		res.reason = stopDeadline
		return nil, nil, res, false
	}
	if len(j.Command) == 0 {
		return nil, nil, w.notRun(errors.New("job has no command")), false
	}
	ex, err := w.executorFor(j)
	if err != nil {
		return nil, nil, w.notRun(err), false
	}
	// An executor that picks GPUs itself (Slurm, Kubernetes) runs the job
	// on another machine: the worker's meters cannot see it there.
	rd, err = w.prepare(ctx, j, gpus, executor.Allocates(ex), ownSecrets(ex))
	if err != nil {
		return nil, nil, w.notRun(err), false
	}
	return ex, rd, result{start: now, end: now, exitCode: -1}, true
}

// startMeter starts metering a run: with the worker's own meters for a job
// on this machine; for one that runs elsewhere (remote), as an estimate of
// its GPUs, which a reading from where it ran replaces (collectEnergy).
func (w *Worker) startMeter(j *greenq.Job, gpus []int, remote bool, res *result) *Metering {
	fallbackW := w.cfg.DefaultPowerW
	if j.PowerW > 0 {
		fallbackW = j.PowerW
	}
	if remote {
		res.meter = MeterNone
		return StartMetering(&EstimateMeter{Now: w.clock.now}, w.cpu, make([]int, max(j.GPUs, 0)), fallbackW)
	}
	res.meter = MeterWorker
	return StartMetering(w.meter, w.cpu, gpus, fallbackW)
}

// collectEnergy stops the run's metering and, for a run elsewhere, takes
// the reading from where it ran (chooseReading): the one greenq meter
// posted, else the executor's, else the worker's estimate stands.
func (w *Worker) collectEnergy(ctx context.Context, id string, exit executor.Exit, mt *Metering, rd *runDirs, res *result) {
	res.gpu, res.cpu = mt.Stop(exit.CPU)
	if e, meter := chooseReading(w.takePosted(ctx, id, rd), exit.Energy); e != nil {
		res.gpu, res.cpu = readingParts(*e)
		res.meter = meter
	}
}

// takePosted returns the reading greenq meter posted with the run's job
// token, and revokes the token; nil for a run without one.
func (w *Worker) takePosted(ctx context.Context, id string, rd *runDirs) *executor.Reading {
	if !rd.token {
		return nil
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	r, err := w.store.TakeEnergy(tctx, id)
	if err != nil {
		w.log.Warn("read the energy reading posted for the job", "job", id, "err", err)
	}
	return r
}

// chooseReading picks a remote run's energy: the reading greenq meter
// posted to the API, else the executor's (greenq meter's file, or the
// cluster's accounting); but a measured one of the executor's beats a
// posted estimate. Nil means neither came: the worker's estimate stands
// (MeterNone). meter is the receipt's EnergyMeter.
func chooseReading(posted, collected *executor.Reading) (r *executor.Reading, meter string) {
	switch {
	case posted != nil && (posted.Source.Measured() || collected == nil || !collected.Source.Measured()):
		return posted, MeterGreenqAPI
	case collected != nil:
		return collected, cmp.Or(collected.Meter, MeterGreenq)
	}
	return nil, ""
}

// exitReason records why a run ended where the executor says it could not
// follow the job: a run lost with its node is planned again.
func (w *Worker) exitReason(j *greenq.Job, exit executor.Exit, sink io.Writer, res *result) {
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
}

// supervise waits for the job to exit, stopping it when greenq must: the
// deadline, a cancel, a lost task, the end of a segment, the planner's
// pause, a drain. It sends
// the job's warning signal before the deadline when asked. Its timers run
// on the worker's clock.
func (w *Worker) supervise(ctx context.Context, j *greenq.Job, proc executor.Process, rd *runDirs,
	r *runningJob, exited <-chan executor.Exit, res *result) executor.Exit {
	ts := &runTimers{clock: w.clock}
	defer ts.stop()
	s := &stopper{w: w, j: j, proc: proc, control: rd.controlFile, grace: j.Grace(w.cfg.Grace), res: res, timers: ts}
	ev := w.stopEvents(ctx, j, proc, r, res.start, ts)
	for {
		select {
		case exit := <-exited:
			return exit
		case <-ev.ctxDone:
			ev.ctxDone = nil
			s.stop(contextReason(ctx))
		case <-ev.cancelled:
			ev.cancelled = nil
			s.stop(stopCancel)
		case <-ev.deadline:
			ev.deadline = nil
			s.stop(stopDeadline)
		case <-ev.warn:
			ev.warn = nil
			s.signal(warnSignals[j.WarnSignal], j.WarnSignal)
		case <-ev.abandon:
			ev.abandon = nil
			s.stop(stopAbandon)
		case <-ev.segEnd:
			ev.segEnd, ev.draining = nil, nil
			s.stop(stopPause)
		case <-ev.draining:
			ev.segEnd, ev.draining = nil, nil
			s.stop(stopPause)
		case <-ev.paused:
			ev.paused, ev.segEnd = nil, nil
			s.stop(stopPause)
		case <-s.kill:
			s.kill = nil
			s.signal(syscall.SIGKILL, "KILL")
		}
	}
}

// stopEvents are what can end a run, as channels; a nil one never fires.
type stopEvents struct {
	ctxDone, cancelled, abandon, draining, paused <-chan struct{}
	deadline, warn, segEnd                        <-chan time.Time
}

// stopEvents returns the events that stop j's run, started at start.
func (w *Worker) stopEvents(ctx context.Context, j *greenq.Job, proc executor.Process, r *runningJob, start time.Time, ts *runTimers) stopEvents {
	ev := stopEvents{ctxDone: ctx.Done(), cancelled: r.cancel, abandon: w.abandon, draining: w.draining,
		deadline: ts.at(j.Deadline)}
	if j.WarnSignal != "" && !j.Deadline.IsZero() && !executor.DeliversWarning(proc) {
		ev.warn = ts.at(j.Deadline.Add(-time.Duration(j.WarnBeforeS) * time.Second))
	}
	if end, ok := pauseAt(j, start); ok {
		ev.segEnd = ts.at(end)
	}
	if j.Interruptible {
		ev.paused = r.pause
	} else {
		ev.draining = nil // let it finish within Grace; abandon stops it after that
	}
	return ev
}

func contextReason(ctx context.Context) stopReason {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return stopDeadline
	}
	return stopContext
}

// stopper carries out the stop protocol on one run: the control-file
// notice, SIGTERM (or the executor's own pause), the grace, SIGKILL.
type stopper struct {
	w       *Worker
	j       *greenq.Job
	proc    executor.Process
	control string
	grace   time.Duration
	res     *result
	timers  *runTimers
	kill    <-chan time.Time // fires at the end of the grace; nil before a stop
}

// stop starts SIGTERM → grace → SIGKILL once; a later, stronger reason
// (a cancel during a pause) replaces the recorded one.
func (s *stopper) stop(reason stopReason) {
	if r := s.res.reason; r == stopNone || r == stopPause || r == stopContext {
		s.res.reason = reason
	}
	if s.kill != nil {
		return
	}
	notice := ControlStop
	if reason == stopPause {
		notice = ControlPause
	}
	_ = os.WriteFile(s.control, []byte(notice+"\n"), 0o644)
	if err := term(s.proc, reason == stopPause); err != nil {
		s.w.log.Warn("signal job", "job", s.j.ID, "signal", "TERM", "err", err)
	}
	s.kill = s.timers.at(s.w.clock.now().Add(s.grace))
}

func (s *stopper) signal(sig syscall.Signal, name string) {
	if err := s.proc.Signal(sig); err != nil {
		s.w.log.Warn("signal job", "job", s.j.ID, "signal", name, "err", err)
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
	remote        bool     // the executor runs the job on another machine
	token         bool     // the run has a job token (EnvJobToken)
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
		rd.remote = true
		rd.token = w.jobToken(ctx, j, vars)
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
	if remote {
		rd.spec.ReadingFile = filepath.Join(private, "reading.json")
	}
	if secretsByName {
		rd.spec.Secrets = j.Secrets
	}
	if sig, ok := warnSignals[j.WarnSignal]; ok && !j.Deadline.IsZero() {
		rd.spec.Warn = executor.Warning{Signal: sig, Before: time.Duration(j.WarnBeforeS) * time.Second}
	}
	ok = true
	return rd, nil
}

// jobTokenTTL bounds a job token of a job without a deadline.
const jobTokenTTL = 7 * 24 * time.Hour

// jobToken mints the run's job token into vars (EnvJobToken, EnvAPIURL)
// when the worker knows the API's URL, and reports whether it did. A
// token that cannot be minted leaves the reading to the file.
func (w *Worker) jobToken(ctx context.Context, j *greenq.Job, vars map[string]string) bool {
	if w.cfg.APIURL == "" {
		return false
	}
	ttl := jobTokenTTL
	if !j.Deadline.IsZero() {
		ttl = min(ttl, j.Deadline.Sub(w.clock.now())+time.Hour)
	}
	tok, err := w.store.MintJobToken(ctx, j.ID, ttl)
	if err != nil {
		w.log.Warn("mint the job's token: greenq meter cannot post its reading", "job", j.ID, "err", err)
		return false
	}
	vars[EnvJobToken], vars[EnvAPIURL] = tok, w.cfg.APIURL
	return true
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
