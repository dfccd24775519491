package worker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/greenq/greenq"
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
	// LogTailBytes bounds the output a job may have waiting to be written
	// to its log; older output is dropped first. Default 256 KiB.
	LogTailBytes int
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
	// CheckpointRoot holds a directory per interruptible job
	// (GREENQ_CHECKPOINT_DIR), kept across its segments and never deleted
	// by the worker. Default $TMPDIR/greenq-checkpoints.
	CheckpointRoot string
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
	if c.LogTailBytes <= 0 {
		c.LogTailBytes = 256 << 10
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
	for r, p := range c.PUE {
		if p < 1 {
			return greenq.Invalid("pue", "region %s: PUE %v is below 1", r, p)
		}
	}
	return nil
}
