package queue

import (
	"context"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestSizeQueues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		region string
		gpus   int
		queue  string
	}{
		{"eu-north", 0, "region:eu-north"},
		{"eu-north", 1, "region:eu-north"},
		{"eu-north", 2, "region:eu-north:gpus=2"},
		{"us-west-2", 16, "region:us-west-2:gpus=16"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.queue, SizeQueue(tt.region, tt.gpus))
		region, gpus, ok := ParseQueue(tt.queue)
		require.True(t, ok, tt.queue)
		require.Equal(t, tt.region, region)
		require.Equal(t, max(tt.gpus, 1), gpus)
	}
	for _, bad := range []string{"default", "region:", "region:a:gpus=1", "region:a:gpus=x", "region::gpus=2", "region:a:gpus=02", "critical"} {
		_, _, ok := ParseQueue(bad)
		require.False(t, ok, bad)
	}
	require.Equal(t, map[string]int{"region:a": 1}, WorkerQueues("a", 1))
	require.Equal(t, map[string]int{"region:a": 1, "region:a:gpus=2": 2, "region:a:gpus=3": 3, "region:a:gpus=4": 4}, WorkerQueues("a", 4),
		"a 4-GPU worker serves every size it can run, the largest first")
}

// deleteSizeQueues removes the size queues of the test's regions at cleanup.
func deleteSizeQueues(t *testing.T, in *asynq.Inspector, b *bundle, upTo int) {
	t.Cleanup(func() {
		for _, r := range b.regions {
			for n := 2; n <= upTo; n++ {
				_ = in.DeleteQueue(SizeQueue(r, n), true)
			}
		}
	})
}

func TestReleaseOntoSizeQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	in := inspector(t, b)
	deleteSizeQueues(t, in, b, 4)
	r := newReleaser(t, b)
	one := b.submit(t, "alice")
	three := b.submit(t, "alice", func(q *greenq.SubmitRequest) { q.GPUs = 3 })
	for _, j := range []*greenq.Job{one, three} {
		b.plan(t, j.ID, b.regions[0], t0, false)
	}
	_, err := r.ReleaseDue(ctx)
	require.NoError(t, err)

	_, err = in.GetTaskInfo(RegionQueue(b.regions[0]), one.ID+":1")
	require.NoError(t, err, "a 1-GPU job goes on the region queue")
	_, err = in.GetTaskInfo(SizeQueue(b.regions[0], 3), three.ID+":1")
	require.NoError(t, err, "a 3-GPU job goes on its size queue")
	require.False(t, hasTask(t, in, b.regions[0], three.ID+":1"), "and not on the region queue, which every worker serves")

	// Redispatch (a worker with too few GPUs holding a task) moves it to
	// the size queue under its own id, once.
	for range 2 {
		require.NoError(t, Redispatch(ctx, asynq.NewClientFromRedisClient(b.rdb), three, b.regions[1], 1))
	}
	info, err := in.GetTaskInfo(SizeQueue(b.regions[1], 3), three.ID+":1:gpus=3")
	require.NoError(t, err)
	require.JSONEq(t, `{"job_id":"`+three.ID+`","release":1}`, string(info.Payload))
	require.Equal(t, DefaultMaxRetry, info.MaxRetry)

	// The queue depth metric counts every size queue of a region.
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(NewCollector(b.s, in)))
	for region, want := range map[string]float64{b.regions[0]: 2, b.regions[1]: 1} {
		got, ok := gauge(t, reg, "greenq_queue_depth", map[string]string{"region": region})
		require.True(t, ok, region)
		require.Equal(t, want, got, region)
	}
}

func TestSubmitRefusesJobsLargerThanEveryWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Regions = append(c.Regions, greenq.Region{Name: c.Regions[0].Name + "-cfg", Zone: "Z", PUE: 1, MaxGPUsPerWorker: 8})
	})
	ctx := context.Background()
	small, big, cfg := b.regions[0], b.regions[1], b.regions[0]+"-cfg"
	submit := func(gpus int, regions ...string) error {
		_, err := b.s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", GPUs: gpus, Regions: regions})
		return err
	}
	count := func() int {
		jobs, _, err := b.s.List(ctx, ListOptions{Limit: 1000})
		require.NoError(t, err)
		return len(jobs)
	}

	// Nothing known about small or big: any size is taken.
	require.NoError(t, submit(100, small, big))

	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w2", Region: small, GPUs: 2}, 300*time.Millisecond))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w4", Region: big, GPUs: 4}, 300*time.Millisecond))
	tests := []struct {
		gpus    int
		regions []string
		ok      bool
	}{
		{3, []string{small, big}, true},
		{4, []string{big}, true},
		{3, []string{small}, false},
		{100, []string{small, big}, false},
		{8, []string{cfg}, true}, // the configured size, no worker up yet
		{9, []string{cfg}, false},
		{1, []string{small}, true},
		{100, nil, false}, // every region
	}
	check := func(when string) {
		t.Helper()
		for _, tt := range tests {
			before := count()
			err := submit(tt.gpus, tt.regions...)
			if tt.ok {
				require.NoError(t, err, "%s: %d GPUs in %v", when, tt.gpus, tt.regions)
				continue
			}
			requireCode(t, err, greenq.CodeInvalidArgument)
			var ge *greenq.Error
			require.ErrorAs(t, err, &ge)
			require.Equal(t, "gpus", ge.Field, "%s: %v", when, err)
			require.Equal(t, before, count(), "a refused job stores nothing")
		}
	}
	check("workers up")
	regions, err := b.s.Regions(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{2, 4, 8}, []int{regions[0].MaxGPUsPerWorker, regions[1].MaxGPUsPerWorker, regions[2].MaxGPUsPerWorker})

	// The heartbeats lapse (a restart): the sizes are remembered.
	require.Eventually(t, func() bool {
		ws, err := b.s.Workers(ctx)
		require.NoError(t, err)
		return len(ws) == 0
	}, 5*time.Second, 50*time.Millisecond)
	check("workers restarting")

	// After WorkerMemory with no heartbeat they are forgotten: nothing is
	// known about small and big again.
	b.clk.Add(WorkerMemory + time.Second)
	require.NoError(t, submit(100, small, big))
	require.NoError(t, submit(3, small))
}

func TestPlannerCountsRoomPerWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	small, big := b.regions[0], b.regions[1]
	// small is far cleaner, but its 4-GPU worker is taken all day; 4 GPUs
	// are free there, on two 2-GPU workers.
	require.NoError(t, b.s.PutSeries(ctx, hourly(small, 20, 20)))
	require.NoError(t, b.s.PutSeries(ctx, hourly(big, 300, 300)))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "s1", Region: small, GPUs: 2}, time.Minute))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "s2", Region: small, GPUs: 2}, time.Minute))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "s3", Region: small, GPUs: 4}, time.Minute))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "b1", Region: big, GPUs: 4}, time.Minute))
	held := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline, r.DurationEstimateS, r.GPUs = "20h", 20*3600, 4 })
	b.plan(t, held.ID, small, t0, false)
	b.force(t, held.ID, greenq.StateReleased)
	three := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline, r.DurationEstimateS, r.GPUs = "10h", 3600, 3 })
	two := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline, r.DurationEstimateS, r.GPUs = "10h", 3600, 2 })

	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, big, mustGet(t, b, three.ID).Plan.Region, "two 2-GPU workers are no room for 3 GPUs")
	require.Equal(t, small, mustGet(t, b, two.ID).Plan.Region)
}
