package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker/jobfiles"
	"github.com/hibiken/asynq"
)

// finishMargin is added to Grace for asynq's ShutdownTimeout, so that a job
// paused within Grace is reported before asynq gives its task back.
const finishMargin = 5 * time.Second

// Worker runs the jobs released to one region.
type Worker struct {
	cfg     Config
	store   Store
	redis   asynq.RedisConnOpt
	log     *slog.Logger
	pool    *gpuPool
	meter   EnergyMeter
	cpu     *CPUMeter
	metrics *metrics
	runAs   *runAs
	clock   *skewClock
	base    []string // a job's environment before its own variables (env.go)
	secrets secretStore
	// enq moves a task this worker has too few GPUs for to its size
	// queue (handBack); nil when the handler is driven without Run.
	enq queue.Enqueuer

	checkpoints, outputs *jobfiles.Location
	facts                factsCache // the server's region facts, for receipts (facts.go)

	mu      sync.Mutex
	running map[string]*runningJob

	draining  chan struct{} // closed when Run's context ends
	abandon   chan struct{} // closed once asynq has given unfinished tasks back
	drainOnce sync.Once
	abandonMu sync.Once
	handlers  sync.WaitGroup
	// life ends when the worker gives up on its running jobs
	// (abandonRunning) or closes: it bounds finish's retries.
	life    context.Context
	endLife context.CancelFunc
}

// runningJob is how the worker reaches a job in progress.
type runningJob struct {
	cancel     chan struct{}
	cancelOnce sync.Once
	// pause closes when the planner asks the job to pause (an
	// interruptible one; others ignore it).
	pause     chan struct{}
	pauseOnce sync.Once
}

func newRunningJob() *runningJob {
	return &runningJob{cancel: make(chan struct{}), pause: make(chan struct{})}
}

func (r *runningJob) cancelled() {
	r.cancelOnce.Do(func() { close(r.cancel) })
}

func (r *runningJob) paused() {
	r.pauseOnce.Do(func() { close(r.pause) })
}

// New returns a worker for cfg.Region. redisOpt is the asynq connection
// (nil only for a worker whose handler is driven directly, as in tests).
func New(cfg Config, store Store, redisOpt asynq.RedisConnOpt) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("new worker: store is nil")
	}
	log := cfg.Logger.With("component", "worker", "region", cfg.Region, "worker", cfg.ID)
	runAs, err := lookupRunAs(cfg.RunAsUser)
	if err != nil {
		return nil, err
	}
	checkpoints, err := jobfiles.Open(context.Background(), cfg.CheckpointRoot)
	if err != nil {
		return nil, greenq.Invalid("checkpoint_dir", "%v", err)
	}
	outputs, err := jobfiles.Open(context.Background(), cfg.OutputRoot)
	if err != nil {
		checkpoints.Close()
		return nil, greenq.Invalid("output_dir", "%v", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register worker metrics: %w", err)
	}
	meter := cfg.Meter
	if meter == nil {
		var err error
		meter, err = OpenGPUMeter(MeterOptions{SampleInterval: cfg.SampleInterval, Now: cfg.Now, Logger: log})
		if err != nil {
			log.Info("GPU energy will be estimated", "reason", err, "power_w_per_gpu", cfg.DefaultPowerW)
		}
	}
	w := &Worker{
		cfg: cfg, store: store, redis: redisOpt, log: log,
		pool:  newGPUPool(cfg.GPUs),
		meter: meter,
		cpu: &CPUMeter{Root: cfg.SysRoot, CPUPowerW: cfg.CPUPowerW, RAMPowerW: cfg.RAMPowerW,
			SampleInterval: cfg.SampleInterval, Now: cfg.Now},
		metrics:     m,
		runAs:       runAs,
		clock:       &skewClock{base: cfg.Now},
		base:        baseEnv(cfg.Getenv, cfg.PassEnv, runAs),
		secrets:     secretStore{dir: cfg.SecretsDir},
		checkpoints: checkpoints, outputs: outputs,
		running:  map[string]*runningJob{},
		draining: make(chan struct{}),
		abandon:  make(chan struct{}),
	}
	w.life, w.endLife = context.WithCancel(context.Background())
	m.gpus.WithLabelValues(cfg.Region, cfg.ID).Set(float64(cfg.GPUs))
	m.busy.WithLabelValues(cfg.Region, cfg.ID).Set(0)
	return w, nil
}

// Config returns the worker's configuration with defaults filled.
func (w *Worker) Config() Config { return w.cfg }

// Close releases the GPU meter and the checkpoint and output locations.
func (w *Worker) Close() error {
	w.endLife()
	return errors.Join(w.meter.Close(), w.checkpoints.Close(), w.outputs.Close())
}

// Run serves the region's queues for the job sizes it can run
// (queue.WorkerQueues: 1…GPUs, the largest first) until ctx ends, then
// stops gracefully: it takes no new job, pauses interruptible jobs
// (SIGTERM, Grace, SIGKILL; reported as planned so they are planned
// again), lets the others finish
// within Grace, and kills what is still running after that; asynq gives
// those tasks back to the queue and another worker runs them again.
func (w *Worker) Run(ctx context.Context) error {
	if w.redis == nil {
		return errors.New("run worker: no redis connection")
	}
	if err := w.syncClock(ctx, true); err != nil {
		return fmt.Errorf("run worker: %w", err)
	}
	if err := protectProcess(); err != nil {
		w.log.Warn("jobs running as the worker's user could read its environment", "err", err)
	}
	w.regionFacts(ctx) // says at start where this worker's config disagrees with the server's
	w.sweepCheckpoints(ctx)
	enq := asynq.NewClient(w.redis)
	defer enq.Close()
	w.enq = enq
	queues := queue.WorkerQueues(w.cfg.Region, w.cfg.GPUs)
	srv := asynq.NewServer(w.redis, asynq.Config{
		Concurrency: w.cfg.Concurrency,
		// A job is only on the queue of its size, and this worker serves
		// only the sizes it can run. Strict priority, the largest first:
		// small jobs can run on any worker of the region, large ones only
		// here and on larger workers, so a stream of small jobs must not
		// keep them waiting (the GPU pool is first come, first served too).
		Queues:         queues,
		StrictPriority: true,
		// Released jobs should start within a fraction of a second.
		TaskCheckInterval: 200 * time.Millisecond,
		ShutdownTimeout:   w.cfg.Grace + finishMargin,
		// A cancelled context is a user's cancel, not a failure.
		IsFailure: func(err error) bool { return !errors.Is(err, context.Canceled) },
		Logger:    asynqLogger{w.log.With("component", "asynq")},
		LogLevel:  asynq.WarnLevel,
	})
	if err := srv.Ping(); err != nil {
		return fmt.Errorf("run worker: connect to redis: %w", err)
	}
	if err := srv.Start(asynq.HandlerFunc(w.ProcessTask)); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.log.Info("worker started", "queues", len(queues), "queue", queue.RegionQueue(w.cfg.Region), "gpus", w.cfg.GPUs,
		"concurrency", w.cfg.Concurrency, "gpu_model", w.meter.Model())

	// Heartbeats and cancels go on while running jobs drain.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	loops.Add(3)
	go func() { defer loops.Done(); w.heartbeatLoop(bg) }()
	go func() { defer loops.Done(); w.watchCancels(bg) }()
	go func() { defer loops.Done(); w.watchPauses(bg) }()

	<-ctx.Done()
	w.log.Info("worker stopping", "grace", w.cfg.Grace)
	w.drain()
	srv.Shutdown()
	w.abandonRunning()
	w.handlers.Wait()
	stopBG()
	loops.Wait()
	w.log.Info("worker stopped")
	return nil
}

// drain tells running jobs the worker is stopping.
func (w *Worker) drain() { w.drainOnce.Do(func() { close(w.draining) }) }

// abandonRunning kills jobs still running after asynq's shutdown timeout.
// Reports still being retried (finish) stop then too: asynq has given
// their tasks back.
func (w *Worker) abandonRunning() {
	w.abandonMu.Do(func() { close(w.abandon); w.endLife() })
}

// heartbeatLoop announces the worker and its busy GPUs until ctx ends.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		w.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) heartbeat(ctx context.Context) {
	_ = w.syncClock(ctx, false)
	info := queue.WorkerInfo{ID: w.cfg.ID, Region: w.cfg.Region, GPUs: w.cfg.GPUs,
		Busy: w.pool.busy(), GPUModel: w.meter.Model(), SeenAt: w.clock.now()}
	w.clusterCapacity(ctx, &info)
	if err := w.store.Heartbeat(ctx, info, 3*w.cfg.HeartbeatInterval); err != nil && ctx.Err() == nil {
		w.log.Warn("heartbeat", "err", err)
	}
}

// watchCancels stops running jobs that are cancelled: from the store's
// cancel events, and by reading their records every CancelPollInterval in
// case an event was missed (pub/sub does not redeliver).
func (w *Worker) watchCancels(ctx context.Context) {
	events := w.store.CancelEvents(ctx)
	t := time.NewTicker(w.cfg.CancelPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-events:
			if !ok {
				events = nil // poll only
				continue
			}
			w.cancelRunning(id)
		case <-t.C:
			for _, id := range w.runningIDs() {
				j, err := w.store.Get(ctx, "", id)
				if err != nil {
					if ctx.Err() == nil {
						w.log.Warn("read job for cancel", "job", id, "err", err)
					}
					continue
				}
				if j.State == greenq.StateCancelled {
					w.cancelRunning(id)
				}
			}
		}
	}
}

// watchPauses pauses running jobs the planner asks to pause (the store's
// pause events): a re-plan found better hours ahead for the rest of an
// interruptible job's run. A missed event leaves the job running to its
// segment's end, so there is nothing to poll for.
func (w *Worker) watchPauses(ctx context.Context) {
	for id := range w.store.PauseEvents(ctx) {
		w.mu.Lock()
		r := w.running[id]
		w.mu.Unlock()
		if r != nil {
			w.log.Info("pausing job: the planner found better hours for the rest of its run", "job", id)
			r.paused()
		}
	}
}

func (w *Worker) cancelRunning(id string) {
	w.mu.Lock()
	r := w.running[id]
	w.mu.Unlock()
	if r != nil {
		w.log.Info("cancelling job", "job", id)
		r.cancelled()
	}
}

func (w *Worker) runningIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.running))
	for id := range w.running {
		ids = append(ids, id)
	}
	return ids
}

// asynqLogger sends asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// Fatal logs at error level; the worker, not asynq, decides to exit.
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
