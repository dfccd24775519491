package slurm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq/worker/executor"
)

// Config configures the Slurm executor. Zero fields take the defaults
// stated.
type Config struct {
	// Partition is the partition jobs are submitted to. Required.
	Partition string
	// Account is charged for the jobs (sbatch --account). Default: the
	// submitting user's default account.
	Account string
	// Spool holds one directory per run (batch script, environment file,
	// output, the meter's reading): a directory the worker and every node
	// of the partition share, at the same path. Default
	// $TMPDIR/greenq-slurm, which only a cluster on the worker's own
	// machine shares.
	Spool string
	// Meter is the path, as the nodes see it, of a greenq binary: each
	// job's command runs as `METER meter --out FILE -- CMD…`, which
	// measures it where it runs. Default: none (the energy is Slurm's
	// ConsumedEnergy where the cluster accounts it, else an estimate).
	Meter string
	// ContainerFlag is the sbatch option that runs a job in an OCI image
	// (pyxis: --container-image; Slurm's own OCI support: --container).
	// Default: none, and a job with an image is refused, saying so.
	ContainerFlag string
	// ExtraArgs are more sbatch options for every job (--qos=…,
	// --constraint=…).
	ExtraArgs []string
	// TimeMargin is added to a job's duration estimate for its time limit
	// (never past its deadline). Default: the estimate again, and at least
	// 30 minutes.
	TimeMargin time.Duration
	// ReplaceEarlierRuns cancels, before submitting a run, any run of the
	// same job id still in Slurm: one a worker that died (kill -9) left
	// behind, which asynq has since given to this one. greenq worker sets
	// it; Slurm's job name greenq-<id> finds them.
	ReplaceEarlierRuns bool
	// PollInterval is how often a job's state and output file are read.
	// Default 1s.
	PollInterval time.Duration
	// Bin is the directory of Slurm's commands (sbatch, scontrol, scancel,
	// sinfo, sacct). Default: found in PATH.
	Bin string
	// Env is the environment Slurm's commands run with, as NAME=value
	// (SLURM_CONF=…). Default: PATH, HOME, USER, LANG and SLURM_CONF from
	// the worker's environment; nothing else of it (the jobs' own
	// environment is never passed to sbatch).
	Env []string
	// Getenv reads the worker's environment for Env's default. Default
	// os.Getenv.
	Getenv func(string) string
	// Logger receives the executor's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock, for time limits. Default time.Now.
	Now func() time.Time
}

// ErrNoPartition is returned by New for a partition the cluster does not
// have.
var ErrNoPartition = errors.New("no such partition on this cluster")

// ErrNoMeter is returned by New for a Config.Meter that is not an
// executable file.
var ErrNoMeter = errors.New("not an executable greenq binary")

// workerEnvNames are the worker's variables Slurm's commands may need.
var workerEnvNames = []string{"PATH", "HOME", "USER", "LANG", "SLURM_CONF"}

// Executor submits jobs to one Slurm partition.
type Executor struct {
	cfg      Config
	env      []string
	maxTime  time.Duration // the partition's MaxTime; 0: unlimited
	energy   bool          // the cluster accounts energy (sacct ConsumedEnergy)
	log      *slog.Logger
	mu       sync.Mutex
	inFlight map[string]int // Slurm job id → GPUs, for this executor's jobs
}

var (
	_ executor.Executor      = (*Executor)(nil)
	_ executor.AllocatesGPUs = (*Executor)(nil)
	_ executor.Capacity      = (*Executor)(nil)
)

// New checks that Slurm's commands answer and the partition exists, and
// returns the executor.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Partition == "" {
		return nil, errors.New("slurm executor: a partition is required (--slurm-partition)")
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Spool == "" {
		cfg.Spool = filepath.Join(os.TempDir(), "greenq-slurm")
	}
	if !filepath.IsAbs(cfg.Spool) {
		return nil, fmt.Errorf("slurm executor: spool %q is not an absolute path", cfg.Spool)
	}
	if err := os.MkdirAll(cfg.Spool, 0o755); err != nil {
		return nil, fmt.Errorf("slurm executor: create spool: %w", err)
	}
	if cfg.Meter != "" {
		if st, err := os.Stat(cfg.Meter); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("slurm executor: meter %s: %w", cfg.Meter, ErrNoMeter)
		}
	}
	e := &Executor{cfg: cfg, env: cfg.Env, log: cfg.Logger.With("component", "slurm", "partition", cfg.Partition),
		inFlight: map[string]int{}}
	if e.env == nil {
		for _, n := range workerEnvNames {
			if v := cfg.Getenv(n); v != "" {
				e.env = append(e.env, n+"="+v)
			}
		}
	}
	if _, err := e.lookPath("sbatch"); err != nil {
		return nil, fmt.Errorf("slurm executor: %w (install Slurm's client commands, or set the Slurm bin directory)", err)
	}
	out, err := e.run(ctx, "sinfo", "-h", "-p", cfg.Partition, "-o", "%l")
	if err != nil {
		return nil, fmt.Errorf("slurm executor: %w", err)
	}
	limits := strings.Fields(out)
	if len(limits) == 0 {
		return nil, fmt.Errorf("slurm executor: partition %q: %w (sinfo lists none)", cfg.Partition, ErrNoPartition)
	}
	if d, ok := parseSlurmDuration(limits[0]); ok {
		e.maxTime = d
	}
	if conf, err := e.run(ctx, "scontrol", "show", "config"); err == nil {
		e.energy = accountsEnergy(conf)
	}
	return e, nil
}

// AllocatesGPUs implements executor.AllocatesGPUs: Slurm picks the GPUs.
func (e *Executor) AllocatesGPUs() bool { return true }

// Spool returns the directory of the runs' files.
func (e *Executor) Spool() string { return e.cfg.Spool }

// Partition returns the partition jobs go to.
func (e *Executor) Partition() string { return e.cfg.Partition }

// GPUCapacity implements executor.Capacity from sinfo: the GPUs free on
// the partition's nodes that take jobs, plus those this executor's jobs
// hold or wait for.
func (e *Executor) GPUCapacity(ctx context.Context) (executor.GPUCapacity, error) {
	out, err := e.run(ctx, "sinfo", "-h", "-N", "-p", e.cfg.Partition, "-O", "NodeList:|,StateLong:|,Gres:|,GresUsed:|")
	if err != nil {
		return executor.GPUCapacity{}, err
	}
	free, largest, total := parseNodes(out)
	e.mu.Lock()
	busy := 0
	for _, n := range e.inFlight {
		busy += n
	}
	e.mu.Unlock()
	return executor.GPUCapacity{Offered: free + busy, Busy: busy, Largest: largest, Total: total}, nil
}

// Start implements executor.Executor: it writes the run's files and
// submits the batch script. It returns once Slurm has the job (which may
// wait in Slurm's queue for its GPUs).
func (e *Executor) Start(ctx context.Context, s executor.Spec) (executor.Process, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("start: no command")
	}
	if s.Image != "" && e.cfg.ContainerFlag == "" {
		return nil, fmt.Errorf("start: job needs image %s, but this worker's Slurm partition %s has no container support configured (greenq worker --slurm-container-flag, e.g. --container-image with pyxis)",
			s.Image, e.cfg.Partition)
	}
	if !filepath.IsAbs(s.Dir) {
		return nil, fmt.Errorf("start: workdir %q is not an absolute path", s.Dir)
	}
	limit, err := timeLimit(e.cfg.Now(), s.Deadline, s.Estimate, e.cfg.TimeMargin, e.maxTime)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	dir, err := os.MkdirTemp(e.cfg.Spool, "job-"+sanitize(s.JobID)+"-")
	if err != nil {
		return nil, fmt.Errorf("start: create run directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	j := &job{e: e, dir: dir, out: filepath.Join(dir, "output"), output: s.Output, done: make(chan struct{}),
		gpus: s.GPUCount, warn: s.Warn.Signal != 0 && limit > 0}
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, envScript(s.Env), 0o600); err != nil {
		return nil, fmt.Errorf("start: write the job's environment: %w", err)
	}
	if e.cfg.Meter != "" {
		j.reading = filepath.Join(dir, "reading.json")
	}
	script := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(script, batchScript(s, envFile, e.cfg.Meter, j.reading), 0o644); err != nil {
		return nil, fmt.Errorf("start: write the batch script: %w", err)
	}
	if u := s.User; u != nil {
		for _, p := range []string{dir, envFile, script} {
			if err := os.Lchown(p, int(u.UID), int(u.GID)); err != nil {
				return nil, fmt.Errorf("start: give the run's files to uid %d: %w", u.UID, err)
			}
		}
	}
	if e.cfg.ReplaceEarlierRuns {
		if _, err := e.run(ctx, "scancel", "--partition", e.cfg.Partition, "--name", jobName(s.JobID)); err != nil {
			e.log.Warn("cancel earlier runs of the job", "job", s.JobID, "err", err)
		}
	}
	args := e.sbatchArgs(s, limit, j.out, script)
	out, err := e.run(ctx, "sbatch", args...)
	if err != nil {
		if s.GPUCount > 0 && strings.Contains(err.Error(), "Requested node configuration is not available") {
			return nil, fmt.Errorf("start: no node of Slurm partition %s can give a job %d GPUs (gpus): %w", e.cfg.Partition, s.GPUCount, err)
		}
		return nil, fmt.Errorf("start: %w", err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return nil, fmt.Errorf("start: sbatch answered %q, not a job id", strings.TrimSpace(out))
	}
	j.id = id
	e.mu.Lock()
	e.inFlight[id] = s.GPUCount
	e.mu.Unlock()
	e.log.Debug("job submitted", "job", s.JobID, "slurm_job", id, "gpus", s.GPUCount, "time_limit", limit)
	ok = true
	go j.follow()
	return j, nil
}

// sbatchArgs are sbatch's arguments for s.
func (e *Executor) sbatchArgs(s executor.Spec, limit time.Duration, output, script string) []string {
	args := []string{"--parsable", "--job-name", jobName(s.JobID), "--partition", e.cfg.Partition,
		"--nodes=1", "--ntasks=1", "--chdir", s.Dir, "--output", output, "--export=NONE"}
	if e.cfg.Account != "" {
		args = append(args, "--account", e.cfg.Account)
	}
	if s.GPUCount > 0 {
		args = append(args, "--gres=gpu:"+strconv.Itoa(s.GPUCount))
	}
	if limit > 0 {
		args = append(args, "--time="+formatMinutes(limit))
		if w := s.Warn; w.Signal != 0 {
			before := min(max(int(w.Before.Seconds()), 0), 65535)
			args = append(args, fmt.Sprintf("--signal=B:%d@%d", int(w.Signal), before))
		}
	}
	if u := s.User; u != nil {
		args = append(args, "--uid="+strconv.FormatUint(uint64(u.UID), 10), "--gid="+strconv.FormatUint(uint64(u.GID), 10))
	}
	if s.Image != "" {
		args = append(args, e.cfg.ContainerFlag+"="+s.Image)
		if e.cfg.ContainerFlag == "--container-image" { // pyxis
			var mounts []string
			for _, m := range s.Mounts {
				v := m.Path + ":" + m.Path
				if m.ReadOnly {
					v += ":ro"
				}
				mounts = append(mounts, v)
			}
			mounts = append(mounts, filepath.Dir(output)+":"+filepath.Dir(output))
			args = append(args, "--container-mounts="+strings.Join(mounts, ","), "--container-workdir="+s.Dir)
		}
	}
	args = append(args, e.cfg.ExtraArgs...)
	return append(args, script)
}

func (e *Executor) lookPath(name string) (string, error) {
	if e.cfg.Bin != "" {
		p := filepath.Join(e.cfg.Bin, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return p, nil
	}
	return exec.LookPath(name)
}

// run runs one of Slurm's commands and returns its standard output; an
// error carries its standard error.
func (e *Executor) run(ctx context.Context, name string, args ...string) (string, error) {
	path, err := e.lookPath(name)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = e.env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

func (e *Executor) forget(id string) {
	e.mu.Lock()
	delete(e.inFlight, id)
	e.mu.Unlock()
}

// jobName is the Slurm job name of greenq job id's runs.
func jobName(id string) string { return "greenq-" + sanitize(id) }

func sanitize(id string) string {
	var b strings.Builder
	for _, r := range id {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "job-" + randomHex(4)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
