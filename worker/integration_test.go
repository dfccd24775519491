package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// TestRunServesRegionQueue drives the handler through a real asynq server:
// a job runs to completion, a cancelled one is not retried, and stopping
// the worker pauses an interruptible job.
func TestRunServesRegionQueue(t *testing.T) {
	t.Parallel()
	opt := redistest.AsynqOpt(t)
	region := redistest.Unique("wk")
	qname := queue.RegionQueue(region)
	b := setup(t, func(c *Config) {
		c.Region = region
		c.Grace = 2 * time.Second
		c.HeartbeatInterval = 50 * time.Millisecond
	})
	w, err := New(b.w.cfg, b.fs, opt)
	require.NoError(t, err)
	b.w = w

	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	defer func() { _ = insp.DeleteQueue(qname, true) }()
	enqueue := func(id string) {
		p, err := json.Marshal(map[string]string{"job_id": id})
		require.NoError(t, err)
		_, err = client.Enqueue(asynq.NewTask(queue.TaskTypeRun, p), asynq.Queue(qname), asynq.MaxRetry(3))
		require.NoError(t, err)
	}

	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()

	hb := <-b.fs.beats
	require.Equal(t, region, hb.Region)
	require.Equal(t, 2, hb.GPUs)

	// 1. Runs to completion.
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c", "echo hi"}})
	enqueue(id)
	f := b.waitFinish(t)
	require.Equal(t, id, f.id)
	require.Equal(t, greenq.StateSucceeded, f.f.State)

	// 2. A cancel is final: the task is neither retried nor archived.
	ff := fifo(t, b.dir)
	id = b.submit(t, greenq.Job{Command: []string{"sh", "-c", grandchildScript, ff}})
	enqueue(id)
	readFifo(t, ff)
	b.fs.cancel(id)
	f = b.waitFinish(t)
	require.Equal(t, greenq.StateCancelled, f.f.State)
	deadline := time.Now().Add(10 * time.Second)
	for {
		qi, err := insp.GetQueueInfo(qname)
		require.NoError(t, err)
		if qi.Active == 0 {
			require.Zero(t, qi.Retry+qi.Archived+qi.Pending, "%+v", qi)
			break
		}
		require.True(t, time.Now().Before(deadline), "task still active")
		time.Sleep(20 * time.Millisecond) // asynq marks the task done after the handler returns
	}
	require.Equal(t, 1, b.fs.job(id).Attempts)

	// 3. Stopping the worker pauses an interruptible job.
	ff = fifo(t, b.dir)
	id = b.submit(t, greenq.Job{Interruptible: true,
		Command: []string{"sh", "-c", `trap 'exit 143' TERM; echo > "$0"; while :; do sleep 0.05; done`, ff}})
	enqueue(id)
	readFifo(t, ff)
	stop()
	f = b.waitFinish(t)
	require.Equal(t, id, f.id)
	require.Equal(t, greenq.StatePlanned, f.f.State)
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}
