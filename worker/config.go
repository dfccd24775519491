package worker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/process"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Worker. Zero fields take the defaults stated.
type Config struct {
	// Region is the region whose queue this worker serves. Required.
	Region string
	// GPUs is how many GPUs this machine offers to jobs (indices
	// 0..GPUs-1, as CUDA_VISIBLE_DEVICES sees them in PCI bus order).
	// Default 1.
	GPUs int
	// Concurrency is the most jobs run at once. Default GPUs.
	Concurrency int
	// ID names the worker in heartbeats and run records. Default
	// hostname-pid.
	ID string
	// Grace is how long a stopping worker lets running jobs finish, and how
	// long a paused interruptible job has between SIGTERM and SIGKILL.
	// Default 30s.
	Grace time.Duration
	// LogBytes bounds the output a job may have waiting to be written to
	// its log: when the store falls that far behind, the first and latest
	// halves are kept and the middle is dropped, counted in the log's cut
	// marker. Default queue.DefaultLogBytes (1 MiB), the store's own bound.
	LogBytes int
	// DefaultPowerW is the draw per GPU assumed when NVML cannot measure
	// and the job states none. Default 300.
	DefaultPowerW float64
	// CPUPowerW is the whole CPU's draw at full load, for the CPU energy
	// estimate where RAPL is unavailable. Default 100.
	CPUPowerW float64
	// RAMPowerW is the memory draw charged to a job where RAPL has no DRAM
	// domain. Default 10 (about 3 W per 8 GiB for ~27 GiB).
	RAMPowerW float64
	// EmbodiedGCO2PerGPUHour is SCI's M per GPU-hour. Default
	// DefaultEmbodiedGCO2PerGPUHour (≈10.3, see there for the source);
	// negative means 0.
	EmbodiedGCO2PerGPUHour float64
	// SampleInterval is how often GPU power, utilisation and memory (and
	// RAPL counters) are sampled. Default 1s.
	SampleInterval time.Duration
	// CheckpointRoot is where interruptible jobs keep their checkpoints
	// (GREENQ_CHECKPOINT_DIR), one directory per job kept across its
	// segments: a directory on storage shared by every worker the job may
	// move to, or an object-store URL (file://, s3://…) pulled before and
	// pushed after each segment. Deleted when the job succeeds or is
	// cancelled; kept CheckpointRetention after a failure. Default
	// $TMPDIR/greenq-checkpoints (this machine only).
	CheckpointRoot string
	// WorkRoot holds a fresh working directory for each run of a job that
	// names no workdir, removed when the run ends. Default
	// $TMPDIR/greenq-work.
	WorkRoot string
	// RunRoot holds each run's private directory (greenq's control and
	// functional-units files), removed when the run ends; for an executor
	// that runs jobs on other machines (Slurm), a directory they share.
	// Default $TMPDIR.
	RunRoot string
	// OutputRoot is where each job's GREENQ_OUTPUT_DIR lives, kept after
	// the job and listed on it: a shared directory or an object-store URL
	// (uploaded after each run). Default $TMPDIR/greenq-outputs.
	OutputRoot string
	// CheckpointRetention is how long a failed job's checkpoint is kept
	// (for a retry by hand) before the worker deletes it. Default 7 days.
	CheckpointRetention time.Duration
	// SecretsDir holds one file per secret (the file's name is the
	// secret's), as Kubernetes mounts a Secret; jobs name the secrets they
	// need. Default none: a job that names a secret fails, saying so.
	SecretsDir string
	// PassEnv lists the worker's variables that jobs also see, beside the
	// minimal base (PATH, HOME, LANG, TZ, USER). Names starting GREENQ_ are
	// refused: the worker's configuration never reaches a job. Default
	// none.
	PassEnv []string
	// Executor starts jobs without an image. Default the process
	// executor (a process group on this machine).
	Executor executor.Executor
	// Containers starts jobs with an image. Default none: such a job fails,
	// saying this worker has no container engine.
	Containers executor.Executor
	// Getenv reads the worker's own environment for the job's base and
	// PassEnv. Default os.Getenv.
	Getenv func(string) string
	// PUE is the power usage effectiveness by region name, for receipts;
	// a region not listed has PUE 1.
	PUE map[string]float64
	// HeartbeatInterval is how often the worker announces itself (TTL is
	// three intervals). Default 5s.
	HeartbeatInterval time.Duration
	// CancelPollInterval is how often running jobs' records are read to
	// catch a cancel whose event was missed. Default 10s.
	CancelPollInterval time.Duration
	// Meter measures GPU energy. Default OpenGPUMeter (NVML where
	// available, else an estimate).
	Meter EnergyMeter
	// APIURL is the greenq API's base URL as jobs reach it where a cluster
	// runs them (http://greenq-api.greenq:8080). With it, each run of an
	// executor that runs jobs elsewhere (Slurm, Kubernetes) gets a job
	// token (EnvJobToken) and the URL (EnvAPIURL) in its environment, and
	// greenq meter posts its reading to the API with them. Default "":
	// the reading comes back in a file only.
	APIURL string
	// SysRoot is the file-system root holding sys/class/powercap and
	// proc/stat for RAPL. Default "/".
	SysRoot string
	// RunAsUser, when set, starts every job as this unprivileged user (name
	// or uid), so jobs cannot touch the worker's files or credentials; the
	// worker must run as root. Default: jobs run as the worker's user.
	RunAsUser string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the worker's metrics. Default: a private
	// registry.
	Registerer prometheus.Registerer
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.GPUs <= 0 {
		c.GPUs = 1
	}
	if c.Concurrency <= 0 {
		c.Concurrency = c.GPUs
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.LogBytes <= 0 {
		c.LogBytes = queue.DefaultLogBytes
	}
	if c.DefaultPowerW <= 0 {
		c.DefaultPowerW = 300
	}
	if c.CPUPowerW <= 0 {
		c.CPUPowerW = 100
	}
	if c.RAMPowerW <= 0 {
		c.RAMPowerW = 10
	}
	switch {
	case c.EmbodiedGCO2PerGPUHour == 0:
		c.EmbodiedGCO2PerGPUHour = DefaultEmbodiedGCO2PerGPUHour
	case c.EmbodiedGCO2PerGPUHour < 0:
		c.EmbodiedGCO2PerGPUHour = 0
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = time.Second
	}
	if c.CheckpointRoot == "" {
		c.CheckpointRoot = filepath.Join(os.TempDir(), "greenq-checkpoints")
	}
	if c.WorkRoot == "" {
		c.WorkRoot = filepath.Join(os.TempDir(), "greenq-work")
	}
	if c.RunRoot == "" {
		c.RunRoot = os.TempDir()
	}
	if c.OutputRoot == "" {
		c.OutputRoot = filepath.Join(os.TempDir(), "greenq-outputs")
	}
	if c.CheckpointRetention <= 0 {
		c.CheckpointRetention = 7 * 24 * time.Hour
	}
	if c.Executor == nil {
		c.Executor = process.New()
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.CancelPollInterval <= 0 {
		c.CancelPollInterval = 10 * time.Second
	}
	if c.SysRoot == "" {
		c.SysRoot = "/"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

// validate checks c after WithDefaults.
func (c Config) validate() error {
	if c.Region == "" {
		return greenq.Invalid("region", "is required: the region whose queue this worker serves")
	}
	if err := validatePassEnv(c.PassEnv); err != nil {
		return err
	}
	for r, p := range c.PUE {
		if p < 1 {
			return greenq.Invalid("pue", "region %s: PUE %v is below 1", r, p)
		}
	}
	return nil
}
