package queue

// This file holds the types other packages code against.

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// TaskTypeRun is the asynq task type of a released job; the payload is the
// job id as JSON {"job_id": "..."}.
const TaskTypeRun = "greenq:run"

// RegionQueue returns the asynq queue name of a region's 1-GPU jobs
// ("region:<name>"); SizeQueue names those of larger jobs.
func RegionQueue(region string) string { return "region:" + region }

// SizeQueue returns the asynq queue a job of gpus GPUs is released onto in
// region: RegionQueue for one GPU (or none), "region:<name>:gpus=<n>" for
// n ≥ 2. A worker of G GPUs serves its region's queues for 1…G GPUs
// (WorkerQueues), so a job is only handed to a worker that can run it.
func SizeQueue(region string, gpus int) string {
	if gpus <= 1 {
		return RegionQueue(region)
	}
	return RegionQueue(region) + sizeSep + strconv.Itoa(gpus)
}

const sizeSep = ":gpus="

// WorkerQueues returns the queues a worker of gpus GPUs in region serves,
// SizeQueue for 1…gpus GPUs, each with the job size as its priority. The
// worker serves them in strict priority (asynq.Config.StrictPriority): it
// takes the largest job waiting that it can run, so a stream of small jobs,
// which any worker of the region can run, does not starve large ones,
// which only the larger workers can.
func WorkerQueues(region string, gpus int) map[string]int {
	out := make(map[string]int, max(gpus, 1))
	for n := 1; n <= max(gpus, 1); n++ {
		out[SizeQueue(region, n)] = n
	}
	return out
}

// ParseQueue returns the region and job size of a queue named by
// SizeQueue; ok is false for any other name.
func ParseQueue(name string) (region string, gpus int, ok bool) {
	rest, ok := strings.CutPrefix(name, "region:")
	if !ok || rest == "" {
		return "", 0, false
	}
	i := strings.Index(rest, sizeSep)
	if i < 0 {
		return rest, 1, true
	}
	n, err := strconv.Atoi(rest[i+len(sizeSep):])
	if err != nil || n < 2 || i == 0 || SizeQueue(rest[:i], n) != name {
		return "", 0, false
	}
	return rest[:i], n, true
}

// ListOptions filters List. Zero fields match everything.
type ListOptions struct {
	State  greenq.State
	Tenant string // "" = all tenants (admin)
	Tags   map[string]string
	Region string
	Group  string
	Limit  int    // default 100, max 1000
	Cursor string // from the previous page; "" = first page
}

// WorkerInfo is a worker's heartbeat: who it is and what it offers.
type WorkerInfo struct {
	ID       string    `json:"id"`
	Region   string    `json:"region"`
	GPUs     int       `json:"gpus"`
	Busy     int       `json:"busy"`
	GPUModel string    `json:"gpu_model,omitempty"`
	SeenAt   time.Time `json:"seen_at"`
	// LargestNode is the most GPUs one job can get from this worker, its
	// cluster's largest node (Slurm, Kubernetes); 0: GPUs (JobGPUs).
	LargestNode int `json:"largest_node,omitempty"`
}

// JobGPUs is the most GPUs one job can get from w: LargestNode, else GPUs.
func (w WorkerInfo) JobGPUs() int { return cmp.Or(w.LargestNode, w.GPUs) }

// FinishRequest is what a worker reports when a job's process ends.
type FinishRequest struct {
	State    greenq.State // succeeded, failed or cancelled; planned when paused at a segment end
	ExitCode int
	Error    string
	Segment  greenq.RunSegment
	Receipt  *greenq.Receipt // nil when paused
	Outputs  *greenq.Outputs // what the job left in its output directory; nil: unchanged
}

// RunPayload is the JSON payload of a TaskTypeRun task.
type RunPayload struct {
	JobID string `json:"job_id"`
	// Release is the job's release number this task carries out; Start
	// refuses a task of an earlier release (a stale retry after the job was
	// paused and released again). 0 means any.
	Release int `json:"release,omitempty"`
}
