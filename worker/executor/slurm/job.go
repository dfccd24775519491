package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/greenq/greenq/worker/executor"
)

// lostAfter is how long scontrol may fail before the job counts as lost
// track of (a controller restart takes seconds to minutes).
const lostAfter = 10 * time.Minute

// job is a submitted Slurm job: executor.Process.
type job struct {
	e       *Executor
	id      string
	dir     string // the run's directory under the spool
	out     string // Slurm's output file
	reading string // greenq meter's reading; "" without the meter
	output  io.Writer
	gpus    int
	warn    bool // sbatch --signal delivers the job's warning

	mu      sync.Mutex
	started bool // seen running
	ended   bool
	done    chan struct{}
	exit    executor.Exit
}

var _ executor.Process = (*job)(nil)

// ID returns the Slurm job id.
func (j *job) ID() string { return j.id }

// DeliversWarning reports whether Slurm sends the job's warning signal
// (sbatch --signal), so the worker does not.
func (j *job) DeliversWarning() bool { return j.warn }

// Wait implements executor.Process.
func (j *job) Wait() executor.Exit {
	<-j.done
	return j.exit
}

// Signal implements executor.Process through scancel. A job that has not
// started is cancelled for a stopping signal (there is nothing to deliver
// another one to); one that has ended takes no signal, without error.
func (j *job) Signal(sig syscall.Signal) error {
	j.mu.Lock()
	ended, started := j.ended, j.started
	j.mu.Unlock()
	if ended {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !started {
		if ji, err := j.query(ctx); err == nil && ji.State == "RUNNING" {
			started = true
		}
	}
	var err error
	switch {
	case !started:
		switch sig {
		case syscall.SIGTERM, syscall.SIGKILL, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP:
			_, err = j.e.run(ctx, "scancel", j.id)
		}
	case sig == syscall.SIGKILL:
		_, err = j.e.run(ctx, "scancel", "--signal=KILL", "--full", j.id)
		if _, err2 := j.e.run(ctx, "scancel", j.id); err == nil {
			err = err2
		}
	default:
		// greenq meter passes a signal on to the command's process group:
		// it alone gets it, so the job's processes get it once.
		scope := "--full"
		if j.reading != "" {
			scope = "--batch"
		}
		_, err = j.e.run(ctx, "scancel", "--signal="+strconv.Itoa(int(sig)), scope, j.id)
	}
	if err != nil {
		if ji, qerr := j.query(ctx); qerr != nil || final(ji.State) {
			return nil // ended meanwhile
		}
		return fmt.Errorf("signal slurm job %s: %w", j.id, err)
	}
	return nil
}

// query reads the job's state from scontrol.
func (j *job) query(ctx context.Context) (jobInfo, error) {
	out, err := j.e.run(ctx, "scontrol", "show", "job", "-o", j.id)
	if err != nil {
		if strings.Contains(err.Error(), "Invalid job id") {
			return jobInfo{}, fmt.Errorf("slurm job %s: %w", j.id, errGone)
		}
		return jobInfo{}, err
	}
	return parseJob(strings.TrimSpace(out))
}

// follow polls the job until Slurm is done with it, copying its output
// meanwhile, then collects its energy and removes the run's directory.
func (j *job) follow() {
	defer close(j.done)
	defer j.e.forget(j.id)
	defer os.RemoveAll(j.dir)
	t := &tailer{path: j.out, w: j.output}
	var failingSince time.Time
	tick := time.NewTicker(j.e.cfg.PollInterval)
	defer tick.Stop()
	ctx := context.Background()
	var exit executor.Exit
	for done := false; !done; {
		ji, err := j.query(ctx)
		done = true
		switch {
		case errors.Is(err, errGone):
			exit = executor.Exit{Code: -1, Err: fmt.Errorf("lost track of the job: %w", err)}
		case err != nil && !failingSince.IsZero() && time.Since(failingSince) > lostAfter:
			exit = executor.Exit{Code: -1, Err: fmt.Errorf("lost track of slurm job %s: %w", j.id, err)}
		case err != nil:
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			j.e.log.Warn("read slurm job state", "slurm_job", j.id, "err", err)
			done = false
		case ji.Restarts > 0 || requeued(ji.State):
			// Slurm requeued it after a node failure or a preemption. Its
			// environment file went with the first start, so it must not
			// run again from Slurm's queue: greenq plans it again instead.
			if _, err := j.e.run(ctx, "scancel", j.id); err != nil {
				j.e.log.Warn("cancel the requeued slurm job", "slurm_job", j.id, "err", err)
			}
			exit = executor.Exit{Code: -1, Err: fmt.Errorf("slurm requeued job %s (reason %s: a node failure or preemption): %w",
				j.id, ji.Reason, executor.ErrLost)}
		case final(ji.State):
			exit = exitOf(j.id, ji)
		default:
			failingSince = time.Time{}
			if ji.State == "RUNNING" {
				j.mu.Lock()
				j.started = true
				j.mu.Unlock()
			}
			done = false
		}
		if !done {
			t.copy()
			<-tick.C
		}
	}
	// The output is complete once Slurm reports the end; a shared file
	// system may show the last writes a moment later.
	t.copy()
	time.Sleep(min(j.e.cfg.PollInterval, 500*time.Millisecond))
	t.copy()
	exit.Energy = j.energy(ctx)
	j.mu.Lock()
	j.ended, j.exit = true, exit
	j.mu.Unlock()
}

// energy is the job's reading: greenq meter's where it measured the GPUs
// with NVML, else Slurm's ConsumedEnergy where the cluster accounts
// energy, else the meter's (estimated) one; nil when there is none.
func (j *job) energy(ctx context.Context) *executor.Reading {
	var r *executor.Reading
	if j.reading != "" {
		if b, err := os.ReadFile(j.reading); err == nil {
			var m executor.Reading
			if err := json.Unmarshal(b, &m); err == nil {
				r = &m
			} else {
				j.e.log.Warn("unreadable meter reading", "slurm_job", j.id, "err", err)
			}
		}
	}
	if r != nil && strings.HasPrefix(string(r.Source), "nvml") {
		return r
	}
	if j.e.energy {
		if c, ok := j.e.consumedEnergy(ctx, j.id); ok {
			return c
		}
	}
	return r
}

// consumedEnergy reads the job's ConsumedEnergy (joules) from sacct,
// waiting a little for the accounting to land.
func (e *Executor) consumedEnergy(ctx context.Context, id string) (*executor.Reading, bool) {
	for range 5 {
		out, err := e.run(ctx, "sacct", "-n", "-P", "-X", "-j", id, "-o", "ConsumedEnergyRaw,ElapsedRaw,NodeList")
		if err != nil {
			e.log.Warn("read slurm job energy", "slurm_job", id, "err", err)
			return nil, false
		}
		if r, ok := parseConsumedEnergy(out); ok {
			return r, true
		}
		time.Sleep(time.Second)
	}
	return nil, false
}

// parseConsumedEnergy reads sacct's ConsumedEnergyRaw|ElapsedRaw|NodeList.
func parseConsumedEnergy(out string) (*executor.Reading, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 2 {
			continue
		}
		j, err := strconv.ParseFloat(f[0], 64)
		if err != nil || j <= 0 {
			continue
		}
		el, _ := strconv.ParseFloat(f[1], 64)
		r := &executor.Reading{GPUKWh: j / 3.6e6, Source: "slurm", CPUSource: "slurm", Meter: "slurm", DurationS: el}
		if len(f) > 2 {
			r.Host = f[2]
		}
		return r, true
	}
	return nil, false
}

// tailer copies what is appended to a file to w.
type tailer struct {
	path string
	w    io.Writer
	off  int64
}

func (t *tailer) copy() {
	if t.w == nil {
		return
	}
	f, err := os.Open(t.path)
	if err != nil {
		return // not written yet
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return
	}
	n, _ := io.Copy(t.w, f)
	t.off += n
}
