package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// Enqueuer puts tasks on asynq queues; *asynq.Client implements it.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

var _ Enqueuer = (*asynq.Client)(nil)

// ReleaserConfig configures a Releaser.
type ReleaserConfig struct {
	// Client enqueues released jobs. Default: an asynq client over
	// RedisConnOpt, or else over the Store's own Redis client.
	Client Enqueuer
	// RedisConnOpt is where asynq's queues live when Client is nil and they
	// are not on the Store's Redis.
	RedisConnOpt asynq.RedisConnOpt
	// Now is the clock. Default time.Now. Run sleeps on real timers, so a
	// Now that does not follow real time suits only direct calls of
	// ReleaseDue.
	Now func() time.Time
	// Logger receives releases and failures. Default: discard.
	Logger *slog.Logger
	// MaxRetry is asynq's retry budget per release, spent when a worker
	// dies or cannot start the job. Default DefaultMaxRetry.
	MaxRetry int
	// Retention keeps finished tasks, so their task ids stay taken and a
	// late duplicate release is refused. Default DefaultRetention.
	Retention time.Duration
	// Poll is the longest the loop sleeps without a wake-up, bounding the
	// delay when a pub/sub message is lost. Default 1s.
	Poll time.Duration
	// Concurrency is how many jobs one round releases at once. Default 8.
	Concurrency int
	// Batch is the most jobs one round reads from the schedule. Default 1000.
	Batch int
	// Registerer, when set, gets the release metrics (greenq_release_lag_seconds,
	// greenq_jobs_released_total, greenq_jobs_expired_total).
	Registerer prometheus.Registerer
	// OnRelease, when set, is called after each release with the job and
	// its lag: when the task was enqueued minus the planned start.
	OnRelease func(job *greenq.Job, lag time.Duration)
}

// ReleaserConfig defaults.
const (
	DefaultMaxRetry  = 5
	DefaultRetention = 24 * time.Hour
)

// Releaser is the release loop: it sleeps until the earliest planned start,
// puts every job whose window has opened on its region's asynq queue for
// its size (SizeQueue; task TaskTypeRun, id "<job id>:<release number>")
// and marks it released. It
// never releases before the planned start; urgent plans go at once. Jobs
// whose deadline passed before they could start are marked expired.
type Releaser struct {
	s        *Store
	cfg      ReleaserConfig
	log      *slog.Logger
	client   Enqueuer
	closer   func() error
	wakeCh   chan struct{}
	lag      prometheus.Histogram
	deferral *prometheus.HistogramVec
	rels     *prometheus.CounterVec
	expired  prometheus.Counter
}

// NewReleaser returns a release loop over s; it validates cfg.
func NewReleaser(s *Store, cfg ReleaserConfig) (*Releaser, error) {
	if s == nil {
		return nil, errors.New("new releaser: store is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.Batch == 0 {
		cfg.Batch = 1000
	}
	switch {
	case cfg.MaxRetry < 0:
		return nil, fmt.Errorf("new releaser: MaxRetry: must not be negative, got %d", cfg.MaxRetry)
	case cfg.Retention < 0:
		return nil, fmt.Errorf("new releaser: Retention: must not be negative, got %s", cfg.Retention)
	case cfg.Poll < 0:
		return nil, fmt.Errorf("new releaser: Poll: must be positive, got %s", cfg.Poll)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("new releaser: Concurrency: must be positive, got %d", cfg.Concurrency)
	case cfg.Batch < 0:
		return nil, fmt.Errorf("new releaser: Batch: must be positive, got %d", cfg.Batch)
	}
	r := &Releaser{s: s, cfg: cfg, log: cfg.Logger.With("component", "releaser"), wakeCh: make(chan struct{}, 1)}
	r.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "greenq_release_lag_seconds",
		Help:    "Time from a job's planned start to its task being on the region queue.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	r.rels = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "greenq_jobs_released_total",
		Help: "Jobs released onto a region queue.",
	}, []string{"region"})
	r.deferral = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "greenq_deferral_seconds",
		Help:    "Time from a job's submit to its release: how long greenq held it for a cleaner window.",
		Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600},
	}, []string{"region"})
	r.expired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "greenq_jobs_expired_total",
		Help: "Jobs that could not start before their deadline.",
	})
	if err := r.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("new releaser: %w", err)
	}
	switch {
	case cfg.Client != nil:
		r.client = cfg.Client
	case cfg.RedisConnOpt != nil:
		c := asynq.NewClient(cfg.RedisConnOpt)
		r.client, r.closer = c, c.Close
	default:
		// Shares the Store's connection pool, which the caller closes.
		r.client = asynq.NewClientFromRedisClient(s.rdb)
	}
	return r, nil
}

// register registers the releaser's metrics with reg (nil: none), sharing
// those a releaser in the same process registered before.
func (r *Releaser) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var err error
	if r.lag, err = register(reg, r.lag); err != nil {
		return err
	}
	if r.rels, err = register(reg, r.rels); err != nil {
		return err
	}
	if r.expired, err = register(reg, r.expired); err != nil {
		return err
	}
	r.deferral, err = register(reg, r.deferral)
	return err
}

// register registers c, or returns the collector already registered under
// its name (a second Releaser in one process shares the metrics). Any other
// failure (a name taken by a collector of another kind or help) is
// returned, as worker's register does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old, nil
			}
		}
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// Close releases the asynq client the Releaser made itself.
func (r *Releaser) Close() error {
	if r.closer != nil {
		return r.closer()
	}
	return nil
}

// Wake makes the loop re-read its schedule now (plans changed). Replicas
// are woken through Redis pub/sub as well.
func (r *Releaser) Wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// Run releases jobs until ctx ends. It returns nil when ctx ends, or
// ErrFenced (wrapped) once a newer leader holds the lease.
func (r *Releaser) Run(ctx context.Context) error {
	wakes := r.s.wakeEvents(ctx)
	for {
		next, err := r.ReleaseDue(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrFenced) {
			return fmt.Errorf("release loop: %w", err)
		}
		wait := r.cfg.Poll
		if err != nil {
			r.log.Warn("release round", "err", err)
		} else if !next.IsZero() {
			wait = min(wait, max(next.Sub(r.cfg.Now()), 0))
		}
		if !sleepUntilWake(ctx, wait, r.wakeCh, &wakes, wakeRelease) {
			return nil
		}
	}
}

// releaseChunk is how many due jobs one release step reserves in one round
// trip, enqueues and marks released in another; a burst of jobs due at one
// slot boundary goes out in steps of this size.
const releaseChunk = 256

// ReleaseDue runs one round: it releases every job whose window has opened
// by now, expires jobs past their deadline, and returns when the next
// round is due (zero when nothing is scheduled; at or before now when
// work is left over).
func (r *Releaser) ReleaseDue(ctx context.Context) (time.Time, error) {
	// The schedules hold whole milliseconds: decide at a whole millisecond
	// too, never later than the clock.
	now := r.cfg.Now().Truncate(time.Millisecond)
	idList, err := r.s.due(ctx, r.s.k.release(), now, int64(r.cfg.Batch))
	if err != nil {
		return time.Time{}, fmt.Errorf("release due jobs: %w", err)
	}
	progress := 0
	for len(idList) > 0 {
		n := min(len(idList), releaseChunk)
		done, err := r.releaseMany(ctx, idList[:n], now)
		progress += done
		if err != nil {
			return time.Time{}, err
		}
		idList = idList[n:]
	}
	// Expire what could not start in time.
	expIDs, err := r.s.due(ctx, r.s.k.deadline(), now, int64(r.cfg.Batch))
	if err != nil {
		return time.Time{}, fmt.Errorf("expire jobs: %w", err)
	}
	for _, id := range expIDs {
		ok, err := r.s.expire(ctx, id, now)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			progress++
			r.expired.Inc()
			r.log.Info("expired", "job", id)
		}
	}
	next, err := r.next(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !next.IsZero() && !next.After(now) && progress == 0 {
		// Work is due but none moved (a job failing to enqueue): back off
		// rather than spin.
		next = now.Add(r.cfg.Poll / 4)
	}
	return next, nil
}

// releaseMany releases the jobs of ids that are due by now: it reserves
// them all in one round trip, enqueues their tasks Concurrency at a time,
// and marks the enqueued ones released in one pipeline. A task is always
// enqueued, under a task id fixed by the release number, before its job is
// marked released: a crash in between leaves the job planned and reserved,
// and the next round enqueues the same task id again (asynq refuses the
// duplicate) and marks it. It returns how many jobs it moved (released or
// expired) and the first error, ErrFenced before any other.
func (r *Releaser) releaseMany(ctx context.Context, ids []string, now time.Time) (int, error) {
	resv, err := r.s.reserveMany(ctx, ids, now)
	if err != nil {
		return 0, fmt.Errorf("release due jobs: %w", err)
	}
	var (
		mu       sync.Mutex
		firstErr error
		progress int
		wg       sync.WaitGroup
		sem      = make(chan struct{}, r.cfg.Concurrency)
		queued   = make([]*row, len(resv))
		at       = make([]time.Time, len(resv))
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil || errors.Is(err, ErrFenced) {
			firstErr = err
		}
	}
	for i, rv := range resv {
		switch {
		case errors.Is(rv.err, errPastDeadline):
			ok, err := r.s.expire(ctx, rv.id, now)
			if ok {
				progress++
				r.expired.Inc()
				r.log.Info("expired", "job", rv.id)
			}
			if err != nil {
				fail(err)
			}
			continue
		case rv.err != nil:
			continue
		}
		j := rv.row.job
		if j.State != greenq.StatePlanned || j.Plan == nil || planning.ReleaseAt(j.Plan, now).After(now) {
			// The schedule and the record disagree (they are written
			// together, so this should not happen): the record wins, and
			// the reservation waits for a round where it is due.
			r.log.Warn("release schedule ahead of the job's plan; not releasing", "job", rv.id)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.enqueue(ctx, rv.row); err != nil {
				fail(err)
				return
			}
			queued[i], at[i] = rv.row, r.cfg.Now()
		}()
	}
	wg.Wait()
	var rows []*row
	var ats []time.Time
	for i, q := range queued {
		if q != nil {
			rows, ats = append(rows, q), append(ats, at[i])
		}
	}
	released, errs := r.s.markManyReleased(ctx, rows)
	for i, j := range released {
		if errs[i] != nil {
			fail(errs[i])
			continue
		}
		if j == nil {
			continue
		}
		progress++
		r.observe(j, rows[i].rel, ats[i])
	}
	return progress, firstErr
}

// enqueue puts the task of reserved job row on its region's queue for its
// size, under the task id its release number fixes; a task already there
// (an earlier round enqueued it, then stopped) is not an error.
func (r *Releaser) enqueue(ctx context.Context, row *row) error {
	j, n := row.job, row.rel
	payload, _ := json.Marshal(RunPayload{JobID: j.ID, Release: n})
	_, err := r.client.EnqueueContext(ctx, asynq.NewTask(TaskTypeRun, payload),
		asynq.Queue(SizeQueue(j.Plan.Region, j.GPUs)), asynq.TaskID(taskID(j.ID, n)), asynq.MaxRetry(r.cfg.MaxRetry),
		asynq.Deadline(taskDeadline(j.Deadline)), asynq.Retention(r.cfg.Retention))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue job %s: %w", j.ID, err)
	}
	return nil
}

// Redispatch moves the task of job j's release to the queue of region
// that its size names (SizeQueue), under task id
// "<job id>:<release>:gpus=<n>", with the releaser's default retry and
// retention. A worker calls it for a task it has too few GPUs for, which
// normal dispatch never hands it (one put on the region queue before size
// queues existed, or by hand), and then drops the task it holds. A task of
// that id already there is not an error.
func Redispatch(ctx context.Context, c Enqueuer, j *greenq.Job, region string, release int) error {
	payload, _ := json.Marshal(RunPayload{JobID: j.ID, Release: release})
	_, err := c.EnqueueContext(ctx, asynq.NewTask(TaskTypeRun, payload),
		asynq.Queue(SizeQueue(region, j.GPUs)), asynq.TaskID(taskID(j.ID, release)+sizeSep+strconv.Itoa(j.GPUs)),
		asynq.MaxRetry(DefaultMaxRetry), asynq.Deadline(taskDeadline(j.Deadline)), asynq.Retention(DefaultRetention))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("redispatch job %s: %w", j.ID, err)
	}
	return nil
}

func taskID(id string, release int) string { return id + ":" + strconv.Itoa(release) }

// observe records a release enqueued at at: metrics, log and OnRelease.
func (r *Releaser) observe(released *greenq.Job, release int, at time.Time) {
	lag := at.Sub(released.Plan.Start)
	r.lag.Observe(lag.Seconds())
	r.rels.WithLabelValues(released.Plan.Region).Inc()
	r.deferral.WithLabelValues(released.Plan.Region).Observe(max(at.Sub(released.SubmittedAt), 0).Seconds())
	r.log.Info("released", "job", released.ID, "region", released.Plan.Region, "task", taskID(released.ID, release), "lag", lag, "urgent", released.Plan.Urgent)
	if r.cfg.OnRelease != nil {
		r.cfg.OnRelease(released, lag)
	}
}

// next returns the earliest release or deadline on the schedules.
func (r *Releaser) next(ctx context.Context) (time.Time, error) {
	var next time.Time
	for _, z := range []string{r.s.k.release(), r.s.k.deadline()} {
		t, ok, err := r.s.nextAt(ctx, z)
		if err != nil {
			return time.Time{}, err
		}
		if ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next, nil
}

// releaseOne releases job id if its window has opened by now (releaseMany
// for one job).
func (r *Releaser) releaseOne(ctx context.Context, id string, now time.Time) (bool, error) {
	n, err := r.releaseMany(ctx, []string{id}, now.Truncate(time.Millisecond))
	return n > 0, err
}

// taskDeadline is the deadline given to asynq: the job's, rounded up to a
// whole second, because asynq keeps deadlines in whole Unix seconds and
// would otherwise end the task up to a second early. The worker enforces
// the exact deadline itself.
func taskDeadline(d time.Time) time.Time {
	if t := d.Truncate(time.Second); t.Before(d) {
		return t.Add(time.Second)
	}
	return d
}
