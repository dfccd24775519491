package worker

import (
	"context"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/queue"
)

// Store is what the worker needs from the job store (*queue.Store
// implements it).
type Store interface {
	// Start moves a released or running job to running and counts the
	// attempt. A job in a final state, or cancelled, gives a
	// *greenq.Error with CodeConflict.
	Start(ctx context.Context, id string, run greenq.Run) (*greenq.Job, error)
	// AppendLog adds output to the job's log; the store keeps its head and
	// its tail (queue.Config.LogBytes).
	AppendLog(ctx context.Context, id string, p []byte) error
	// AppendLogCut adds p, then lost bytes the worker could not keep
	// (counted in the log's cut marker), then q.
	AppendLogCut(ctx context.Context, id string, p []byte, lost int64, q []byte) error
	// Finish records the end of a run: succeeded, failed or cancelled, or
	// planned when an interruptible job is paused at the end of a segment.
	Finish(ctx context.Context, id string, f queue.FinishRequest) (*greenq.Job, error)
	// CancelEvents streams the ids of cancelled jobs until ctx ends.
	CancelEvents(ctx context.Context) <-chan string
	// PauseEvents streams the ids of running jobs the planner asks to
	// pause until ctx ends, then closes.
	PauseEvents(ctx context.Context) <-chan string
	// Heartbeat announces the worker and its live capacity for ttl.
	Heartbeat(ctx context.Context, w queue.WorkerInfo, ttl time.Duration) error
	// Series returns a region's stored carbon series.
	Series(ctx context.Context, region string) (forecast.Series, error)
	// Get returns a job; tenant "" matches any tenant.
	Get(ctx context.Context, tenant, id string) (*greenq.Job, error)
	// ServerTime returns the Redis server's clock, which the worker
	// corrects its own to.
	ServerTime(ctx context.Context) (time.Time, error)
	// MintJobToken returns a new credential, valid for ttl, with which
	// greenq meter posts job id's energy reading to the API
	// (queue.Store.MintJobToken); it replaces the job's earlier one.
	MintJobToken(ctx context.Context, id string, ttl time.Duration) (string, error)
	// TakeEnergy returns the reading posted for job id (nil when none
	// was) and revokes the job's token.
	TakeEnergy(ctx context.Context, id string) (*greenq.EnergyReading, error)
}
