package queue

// This file holds the types other packages code against.

import (
	"time"

	"github.com/greenq/greenq"
)

// TaskTypeRun is the asynq task type of a released job; the payload is the
// job id as JSON {"job_id": "..."}.
const TaskTypeRun = "greenq:run"

// RegionQueue returns the asynq queue name of a region ("region:<name>").
func RegionQueue(region string) string { return "region:" + region }

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
}

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
