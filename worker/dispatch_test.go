package worker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestGPUPoolFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	p := newGPUPool(4)
	held, err := p.acquire(context.Background(), 3)
	require.NoError(t, err)
	big, small := make(chan []int, 1), make(chan []int, 1)
	go func() { g, _ := p.acquire(context.Background(), 4); big <- g }()
	waiting := func(n int) func() bool {
		return func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiting) == n }
	}
	require.Eventually(t, waiting(1), 5*time.Second, time.Millisecond)
	go func() { g, _ := p.acquire(context.Background(), 1); small <- g }()
	require.Eventually(t, waiting(2), 5*time.Second, time.Millisecond)
	require.Equal(t, 3, p.busy(), "a GPU is free, but the 1-GPU request waits behind the 4-GPU one")

	p.release(held)
	g := <-big
	require.Len(t, g, 4, "the large request is served first")
	p.release(g)
	g = <-small
	require.Len(t, g, 1)
	p.release(g)

	// A request that gives up leaves the line.
	held, err = p.acquire(context.Background(), 4)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := p.acquire(ctx, 2); gaveUp <- err }()
	require.Eventually(t, waiting(1), 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	p.release(held)
	g, err = p.acquire(context.Background(), 1)
	require.NoError(t, err)
	require.Len(t, g, 1)
}

// countingStore counts the jobs a worker starts.
type countingStore struct {
	Store
	starts atomic.Int32
}

func (s *countingStore) Start(ctx context.Context, id string, run greenq.Run) (*greenq.Job, error) {
	s.starts.Add(1)
	return s.Store.Start(ctx, id, run)
}

// legacyQueue enqueues every task on the region queue, as releasers did
// before size queues.
type legacyQueue struct {
	c      *asynq.Client
	region string
}

func (l legacyQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return l.c.EnqueueContext(ctx, t, append(opts, asynq.Queue(queue.RegionQueue(l.region)))...)
}

// TestDispatchBySize runs a 2-GPU and a 4-GPU worker of one region
// against a real store, releaser and asynq: a 3-GPU job runs on the 4-GPU
// worker and the 2-GPU one never starts it, whether it was released onto
// its size queue or, as before size queues, onto the region queue.
func TestDispatchBySize(t *testing.T) {
	t.Parallel()
	opt := redistest.AsynqOpt(t)
	rdb := redistest.Client(t)
	region := redistest.Unique("wd")
	prefix := redistest.Unique("wdq")
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Regions: []greenq.Region{{Name: region, Zone: "Z", PUE: 1}}})
	require.NoError(t, err)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	t.Cleanup(func() {
		for n := 1; n <= 4; n++ {
			_ = insp.DeleteQueue(queue.SizeQueue(region, n), true)
		}
		ctx := context.Background()
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	ctx := context.Background()

	start := func(id string, gpus int) (*countingStore, func()) {
		cs := &countingStore{Store: store}
		w, err := New(Config{
			Region: region, GPUs: gpus, ID: id, Grace: time.Second, HeartbeatInterval: 50 * time.Millisecond,
			Meter: &EstimateMeter{}, SysRoot: t.TempDir(), CheckpointRoot: t.TempDir(), OutputRoot: t.TempDir(),
			WorkRoot: t.TempDir(), PUE: map[string]float64{region: 1},
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)).With("test_worker", id),
		}, cs, opt)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		return cs, func() {
			stop()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("worker did not stop")
			}
			_ = w.Close()
		}
	}
	release := func(enq queue.Enqueuer, gpus int) string {
		jobs, err := store.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "1h", DurationEstimateS: 60, GPUs: gpus})
		require.NoError(t, err)
		id := jobs[0].ID
		_, err = store.SetPlans(ctx, map[string]greenq.Plan{id: {Region: region, Start: time.Now(), End: time.Now().Add(time.Minute), Urgent: true, Reason: "test"}})
		require.NoError(t, err)
		r, err := queue.NewReleaser(store, queue.ReleaserConfig{Client: enq})
		require.NoError(t, err)
		_, err = r.ReleaseDue(ctx)
		require.NoError(t, err)
		require.Equal(t, greenq.StateReleased, mustJob(t, store, id).State)
		return id
	}
	finished := func(id string) *greenq.Job {
		var j *greenq.Job
		require.Eventually(t, func() bool {
			j = mustJob(t, store, id)
			return j.State.Final()
		}, 20*time.Second, 20*time.Millisecond)
		return j
	}
	client := asynq.NewClient(opt)
	defer client.Close()

	// 1. Released the old way, onto the region queue, while only the 2-GPU
	// worker is up: it hands the task to the 3-GPU queue instead of
	// failing the job, and the 4-GPU worker runs it once it is up.
	small, stopSmall := start("w2", 2)
	defer stopSmall()
	old := release(legacyQueue{client, region}, 3)
	require.Eventually(t, func() bool {
		_, err := insp.GetTaskInfo(queue.SizeQueue(region, 3), old+":1:gpus=3")
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "the 2-GPU worker moves the task to the 3-GPU queue")
	require.Equal(t, greenq.StateReleased, mustJob(t, store, old).State, "and does not fail the job")
	bigW, stopBig := start("w4", 4)
	defer stopBig()
	j := finished(old)
	require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
	require.Equal(t, "w4", j.Run.Worker)

	// 2. Released now: straight onto the 3-GPU queue, which only the
	// 4-GPU worker serves.
	for range 3 {
		j = finished(release(client, 3))
		require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
		require.Equal(t, "w4", j.Run.Worker)
		require.Equal(t, 1, j.Attempts)
	}
	require.Zero(t, small.starts.Load(), "the 2-GPU worker started nothing")
	require.Equal(t, int32(4), bigW.starts.Load())

	// A 1-GPU job may run on either.
	j = finished(release(client, 1))
	require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
}

func mustJob(t *testing.T, s *queue.Store, id string) *greenq.Job {
	t.Helper()
	j, err := s.Get(context.Background(), "", id)
	require.NoError(t, err)
	return j
}
