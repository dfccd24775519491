package api

import (
	"context"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/queue"
)

// Jobs is the job store as the API uses it. Tenant "" means an admin, who
// sees every tenant's jobs; a job of another tenant is reported as
// greenq.ErrNotFound (wrapped).
type Jobs interface {
	// Submit validates req (greenq.SubmitRequest.Normalize: *greenq.Error
	// with CodeInvalidArgument and Field) and stores one job per trial.
	Submit(ctx context.Context, tenant string, req greenq.SubmitRequest) ([]*greenq.Job, error)
	Get(ctx context.Context, tenant, id string) (*greenq.Job, error)
	// List returns one page of jobs and the cursor of the next ("" at the end).
	List(ctx context.Context, opts queue.ListOptions) ([]*greenq.Job, string, error)
	Cancel(ctx context.Context, tenant, id string) (*greenq.Job, error)
	// LogsFrom returns the job's kept output after the first offset bytes
	// (queue.Log); an offset past the end gives CodeInvalidArgument naming
	// "offset".
	LogsFrom(ctx context.Context, tenant, id string, offset int64) (*queue.Log, error)
}

// Plans lists the jobs the planner still owns (pending and planned), of
// every tenant.
type Plans interface {
	Pending(ctx context.Context) ([]*greenq.Job, error)
}

// Forecasts reads the regions and their normalised carbon series.
type Forecasts interface {
	Series(ctx context.Context, region string) (forecast.Series, error)
	Regions(ctx context.Context) ([]greenq.Region, error)
}

// Explainer explains a job's plan (GET /v1/plan?explain=ID): it returns
// the job (of tenant; "" for an admin) and its plan set against the
// alternatives the planner weighed (planning.Planner.Explain).
type Explainer interface {
	Explain(ctx context.Context, tenant, id string, now time.Time) (*greenq.Job, planning.Explanation, error)
}

// Pinger reports whether the backing store is reachable (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Store is everything the API needs; *queue.Store implements it.
type Store interface {
	Jobs
	Plans
	Forecasts
	Explainer
	Pinger
}
