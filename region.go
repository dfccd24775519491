package greenq

import (
	"fmt"
	"strings"
)

// Region is one regional GPU pool as configured (greenq.yaml `regions`) and
// shown by GET /v1/regions.
type Region struct {
	// Name is what workers pass to --region.
	Name string `json:"name" yaml:"name"`
	// Zone is the grid zone the forecast provider knows (e.g. "GB", "SE").
	Zone string `json:"zone" yaml:"zone"`
	// Provider names the forecast source: file, ukci, watttime,
	// electricitymaps or carbonaware. Default file.
	Provider string `json:"provider" yaml:"provider"`
	// PUE is the data centre's power usage effectiveness. Default 1.
	PUE float64 `json:"pue" yaml:"pue"`
	// GPUPriceUSDPerHour is the price of one GPU-hour.
	GPUPriceUSDPerHour float64 `json:"gpu_price_usd_per_hour" yaml:"gpu_price_usd_per_hour"`
	// PriceSchedule optionally overrides the price by hour of day (UTC).
	PriceSchedule []PriceStep `json:"price_schedule,omitempty" yaml:"price_schedule,omitempty"`
	// EmbodiedGCO2PerGPUHour is SCI's M per GPU-hour in this pool: the
	// hardware's manufacturing emissions amortised over its life. Default
	// the config's worker.embodied_gco2_per_gpu_hour, else
	// DefaultEmbodiedGCO2PerGPUHour; negative means none.
	EmbodiedGCO2PerGPUHour float64 `json:"embodied_gco2_per_gpu_hour,omitempty" yaml:"embodied_gco2_per_gpu_hour,omitempty"`
	// MaxGPUsPerWorker is the most GPUs one worker (or cluster node) of the
	// pool offers, for a pool whose workers are not up yet; 0 = unknown.
	// greenq also remembers the largest worker that heartbeat in the region
	// within the last 7 days (queue.WorkerMemory), so a restarting worker
	// does not shrink it. A job needing more GPUs than the larger of the two
	// in every allowed region is refused at submit (naming gpus) and never
	// planned where it does not fit; a region with neither takes any size.
	// GET /v1/regions shows the larger of the two.
	MaxGPUsPerWorker int `json:"max_gpus_per_worker,omitempty" yaml:"max_gpus_per_worker,omitempty"`
	// Capacity is the live GPU count from worker heartbeats (read-only).
	Capacity int `json:"capacity" yaml:"-"`
	// Workers is the number of live workers (read-only).
	Workers int `json:"workers" yaml:"-"`
}

// PriceStep is a time-of-use price for hours [FromHour, ToHour) UTC.
type PriceStep struct {
	FromHour      int     `json:"from_hour" yaml:"from_hour"`
	ToHour        int     `json:"to_hour" yaml:"to_hour"`
	USDPerGPUHour float64 `json:"usd_per_gpu_hour" yaml:"usd_per_gpu_hour"`
}

// CheckFitsWorkers refuses a job of gpus GPUs allowed in the regions named
// by allowed (empty: every region of known) when it needs more than the
// MaxGPUsPerWorker of every one of them. A region whose MaxGPUsPerWorker
// is 0 (nothing known) takes any size, as does a name not in known, so a
// job is refused only where greenq knows it cannot run. The error is an
// *Error with CodeInvalidArgument naming gpus.
func CheckFitsWorkers(gpus int, allowed []string, known []Region) error {
	if gpus <= 1 || len(known) == 0 {
		return nil
	}
	if len(allowed) == 0 {
		for _, r := range known {
			allowed = append(allowed, r.Name)
		}
	}
	best := 0
	var sizes []string
	for _, name := range allowed {
		m := 0
		for _, r := range known {
			if r.Name == name {
				m = r.MaxGPUsPerWorker
				break
			}
		}
		if m <= 0 || gpus <= m {
			return nil
		}
		best = max(best, m)
		sizes = append(sizes, fmt.Sprintf("%s: %d", name, m))
	}
	return Invalid("gpus", "%d GPUs is more than the largest worker of any allowed region offers (%s): ask for at most %d, or allow a region with larger workers",
		gpus, strings.Join(sizes, ", "), best)
}
