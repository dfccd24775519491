package queue

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestOnRedisCluster runs the store's multi-key operations on a Redis
// Cluster (GREENQ_TEST_REDIS_CLUSTER: comma-separated node addresses, or
// else three masters of the test's own) to show that every script and
// pipeline stays within one hash slot.
func TestOnRedisCluster(t *testing.T) {
	t.Parallel()
	var addrs []string
	if env := os.Getenv("GREENQ_TEST_REDIS_CLUSTER"); env != "" {
		addrs = strings.Split(env, ",")
	} else {
		addrs = redistest.Cluster(t)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer rdb.Close()
	ctx := context.Background()
	clk := newClock(t0)
	s, err := NewStore(rdb, Config{Prefix: "gqcluster" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", ""), Now: clk.Now,
		Regions: []greenq.Region{{Name: "a"}, {Name: "b"}}})
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx))
	jobs, err := s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "2h", Trials: 3, Key: "k", DurationEstimateS: 60})
	require.NoError(t, err)
	again, err := s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "2h", Trials: 3, Key: "k", DurationEstimateS: 60})
	require.NoError(t, err)
	require.Equal(t, jobs, again)
	list, _, err := s.List(ctx, ListOptions{Tenant: "alice", State: greenq.StatePending})
	require.NoError(t, err)
	require.Len(t, list, 3)
	n, err := s.SetPlans(ctx, map[string]greenq.Plan{jobs[0].ID: {Region: "a", Start: t0, End: t0.Add(time.Minute)}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	fake := &fakeEnqueuer{}
	r, err := NewReleaser(s, ReleaserConfig{Client: fake, Now: clk.Now})
	require.NoError(t, err)
	_, err = r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.Len(t, fake.tasks, 1)
	_, err = s.Start(ctx, jobs[0].ID, greenq.Run{Region: "a", Worker: "w"})
	require.NoError(t, err)
	require.NoError(t, s.AppendLog(ctx, jobs[0].ID, []byte("hello")))
	logs, err := s.Logs(ctx, "alice", jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, "hello", string(logs))
	_, err = s.Finish(ctx, jobs[0].ID, FinishRequest{State: greenq.StateSucceeded, Receipt: &greenq.Receipt{DurationS: 50}})
	require.NoError(t, err)
	_, err = s.Cancel(ctx, "alice", jobs[1].ID)
	require.NoError(t, err)
	require.NoError(t, s.Heartbeat(ctx, WorkerInfo{ID: "w", Region: "a", GPUs: 2}, time.Minute))
	regions, err := s.Regions(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, regions[0].Capacity)
	require.NoError(t, s.PutSeries(ctx, forecast.Series{Region: "a", Signal: forecast.SignalAverage}))
	clk.Add(3 * time.Hour)
	_, err = r.ReleaseDue(ctx)
	require.NoError(t, err)
	require.Equal(t, greenq.StateExpired, mustGetS(t, s, jobs[2].ID).State)

	l, err := NewLease(rdb, LeaseConfig{Prefix: s.k.prefix, TTL: time.Second})
	require.NoError(t, err)
	lctx, cancel := context.WithCancel(ctx)
	got := make(chan int64, 1)
	go func() { _ = l.Run(lctx, func(c context.Context) { f, _ := FenceFrom(c); got <- f; <-c.Done() }) }()
	select {
	case f := <-got:
		require.Positive(t, f)
	case <-time.After(5 * time.Second):
		t.Fatal("no leader on the cluster")
	}
	cancel()
}

func mustGetS(t *testing.T, s *Store, id string) *greenq.Job {
	t.Helper()
	j, err := s.Get(context.Background(), "", id)
	require.NoError(t, err)
	return j
}
