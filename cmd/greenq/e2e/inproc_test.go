package e2e

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/policy"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker"
)

// The tests of this file's users build greenq's components in this process
// (as `greenq server` and `greenq worker` wire them) against a real
// redis-server, where a fault needs a knob the binary does not offer: a
// worker's clock, or a refresher's TTL and timeout.

// inproc is the server side of greenq in this process: the store the API,
// planner and releaser share, all on the server's clock (time.Now).
type inproc struct {
	t       *testing.T
	r       *redisServer
	rdb     *redis.Client
	regions []greenq.Region
	pcfg    policy.Config
	Store   *queue.Store
	Planner *queue.Planner

	mu       sync.Mutex
	released map[string]time.Time // job id → when the releaser enqueued it (server clock)
}

// testLogger sends slog records to t.Log when GREENQ_E2E_VERBOSE is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("GREENQ_E2E_VERBOSE") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// newInproc starts redis-server and the server-side store and planner for
// regions with a one-second slot. Nothing runs until runPlanner /
// runReleaser.
func newInproc(t *testing.T, regions ...string) *inproc {
	t.Helper()
	r := startRedis(t, "--appendonly", "no")
	rdb := r.Client()
	t.Cleanup(func() { rdb.Close() })
	p := &inproc{t: t, r: r, rdb: rdb, pcfg: policy.Config{Slot: time.Second}, released: map[string]time.Time{}}
	for _, name := range regions {
		p.regions = append(p.regions, greenq.Region{Name: name, Zone: name, Provider: "test", PUE: 1, GPUPriceUSDPerHour: 1})
	}
	var err error
	p.Store, err = queue.NewStore(rdb, queue.Config{Regions: p.regions, Policy: p.pcfg, Logger: testLogger(t)})
	require.NoError(t, err)
	p.Planner, err = queue.NewPlanner(p.Store, queue.PlannerConfig{Replan: "@every 1s", Logger: testLogger(t)})
	require.NoError(t, err)
	return p
}

// goRun runs fn until the test ends.
func goRun(t *testing.T, name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

// runPlanner runs the planner loop until the test ends.
func (p *inproc) runPlanner() { goRun(p.t, "planner", p.Planner.Run) }

// runReleaser runs the release loop until the test ends, noting when each
// job is released.
func (p *inproc) runReleaser() {
	rel, err := queue.NewReleaser(p.Store, queue.ReleaserConfig{
		RedisConnOpt: p.asynqOpt(), Poll: 200 * time.Millisecond, Logger: testLogger(p.t),
		OnRelease: func(j *greenq.Job, _ time.Duration) {
			p.mu.Lock()
			p.released[j.ID] = time.Now()
			p.mu.Unlock()
		},
	})
	require.NoError(p.t, err)
	goRun(p.t, "releaser", rel.Run)
}

// releasedAt says when job id was released (server clock).
func (p *inproc) releasedAt(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.released[id]
	return at, ok
}

func (p *inproc) asynqOpt() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: p.r.Addr()} }

// topology is the Redis the stack uses, for the shared assertions.
func (p *inproc) topology() topology { return topology{Redis: p.r.URL()} }

// clockStore is a worker's view of the store, as `greenq worker` builds it:
// a queue.Store on the worker machine's clock. It notes, on the real
// clock, when the worker started each job.
type clockStore struct {
	*queue.Store
	mu       sync.Mutex
	started  map[string]time.Time
	finished map[string]time.Time
}

func (c *clockStore) Start(ctx context.Context, id string, run greenq.Run) (*greenq.Job, error) {
	c.mu.Lock()
	c.started[id] = time.Now()
	c.mu.Unlock()
	return c.Store.Start(ctx, id, run)
}

func (c *clockStore) Finish(ctx context.Context, id string, f queue.FinishRequest) (*greenq.Job, error) {
	c.mu.Lock()
	c.finished[id] = time.Now()
	c.mu.Unlock()
	return c.Store.Finish(ctx, id, f)
}

// finishedAt says when the worker reported job id's end (real clock).
func (c *clockStore) finishedAt(id string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.finished[id]
	return at, ok
}

// startedAt says when the worker started job id (real clock).
func (c *clockStore) startedAt(id string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.started[id]
	return at, ok
}

// skewedWorker is a worker whose machine's clock is skew ahead of the
// server's (behind when negative).
type skewedWorker struct {
	*worker.Worker
	Store  *clockStore
	cancel context.CancelFunc
	done   chan error
}

// startWorker runs a worker for region whose clock reads real time plus
// skew, with one GPU and a fast heartbeat.
func (p *inproc) startWorker(id, region string, skew time.Duration) *skewedWorker {
	p.t.Helper()
	now := func() time.Time { return time.Now().Add(skew) }
	st, err := queue.NewStore(p.rdb, queue.Config{Regions: p.regions, Now: now, Logger: testLogger(p.t)})
	require.NoError(p.t, err)
	cs := &clockStore{Store: st, started: map[string]time.Time{}, finished: map[string]time.Time{}}
	w, err := worker.New(worker.Config{Region: region, ID: id, GPUs: 1, Grace: 2 * time.Second, Now: now,
		HeartbeatInterval: 200 * time.Millisecond, CancelPollInterval: time.Second,
		CheckpointRoot: p.t.TempDir(), SampleInterval: 200 * time.Millisecond, Logger: testLogger(p.t)}, cs, p.asynqOpt())
	require.NoError(p.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	sw := &skewedWorker{Worker: w, Store: cs, cancel: cancel, done: make(chan error, 1)}
	go func() { sw.done <- w.Run(ctx) }()
	p.t.Cleanup(sw.Stop)
	return sw
}

// Stop stops the worker and waits for it.
func (w *skewedWorker) Stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	_ = w.Close()
	w.cancel = nil
}

// waitJob polls job id on the server's store until cond holds.
func (p *inproc) waitJob(id string, timeout time.Duration, what string, cond func(*greenq.Job) bool) *greenq.Job {
	p.t.Helper()
	var j *greenq.Job
	waitFor(p.t, timeout, what, func() bool {
		var err error
		j, err = p.Store.Get(context.Background(), "", id)
		require.NoError(p.t, err)
		return cond(j)
	})
	return j
}

// waitFinal waits until job id is in a final state.
func (p *inproc) waitFinal(id string, timeout time.Duration) *greenq.Job {
	p.t.Helper()
	return p.waitJob(id, timeout, "job "+id+" to end", func(j *greenq.Job) bool { return j.State.Final() })
}

// troughSeries is a series of one-second points from ten minutes ago to an
// hour ahead at 500 gCO2/kWh, except 50 over [from, from+width): the one
// window a job that fits it should run in.
func troughSeries(region string, from time.Time, width time.Duration) forecast.Series {
	start := time.Now().Truncate(time.Second).Add(-10 * time.Minute)
	s := forecast.Series{Region: region, Zone: region, Source: "test", Signal: forecast.SignalAverage, IssuedAt: time.Now().UTC()}
	for t := start; t.Before(start.Add(70 * time.Minute)); t = t.Add(time.Second) {
		v := 500.0
		if !t.Before(from) && t.Before(from.Add(width)) {
			v = 50
		}
		s.Points = append(s.Points, forecast.Point{Start: t, End: t.Add(time.Second), GCO2PerKWh: v, Kind: forecast.KindForecast})
	}
	return s
}
