package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// redisLoading reports whether Redis says it is loading its dataset (INFO
// is answered while it loads).
func redisLoading(t *testing.T, r *redisServer) bool {
	t.Helper()
	c := r.Client()
	defer c.Close()
	info, err := c.Info(context.Background(), "persistence").Result()
	if err != nil {
		return false
	}
	return strings.Contains(info, "loading:1")
}

// TestRedisLoading restarts Redis over a dataset that takes seconds to
// load: while Redis answers LOADING, /readyz says not ready naming it and
// submit is refused with 503 "unavailable"; once it has loaded, /readyz
// says ready, every job is still there and the same server and worker run
// new jobs, without a restart.
//
// A few hundred MB of filler would make loading last seconds here too, but
// costs as long to write and as much memory; instead the filler is 1 000 small keys and
// Redis's own test knob key-load-delay (1 ms per key while loading, a
// hidden config of redis-server 7) stretches loading to a few seconds.
// loading-process-events-interval-bytes makes Redis answer clients (with
// LOADING) every KiB of loading, as it does every 2 MiB of a big dataset.
func TestRedisLoading(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "yes", "--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	startWorker(t, "worker", cfg, "us", 2)
	srv.API.waitReady(t, true, "us")

	var ids []string
	for i := range 5 {
		j := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-before-loading", DurationEstimateS: 1, Deadline: "10m",
			Command: []string{"echo", fmt.Sprint("job ", i)}})[0]
		ids = append(ids, j.ID)
	}

	c := r.Client()
	defer c.Close()
	ctx := context.Background()
	filler := strings.Repeat("f", 100)
	kv := make([]any, 0, 2000)
	for k := range 1000 {
		kv = append(kv, fmt.Sprintf("e2e:filler:%d", k), filler)
	}
	require.NoError(t, c.MSet(ctx, kv...).Err())
	// Into the AOF's RDB base, which key-load-delay slows (commands
	// replayed from the AOF's incremental file are not).
	require.NoError(t, c.BgRewriteAOF(ctx).Err())
	waitFor(t, 20*time.Second, "the AOF rewrite", func() bool {
		info, err := c.Info(ctx, "persistence").Result()
		return err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})

	r.Shutdown()
	t.Logf("restarting Redis at %s", time.Now().Format(time.RFC3339Nano))
	r.Start() // returns once Redis answers, LOADING or not
	require.True(t, redisLoading(t, r), "Redis is still loading its dataset (else the test proves nothing)")

	var body string
	waitFor(t, 10*time.Second, "/readyz to say not ready because Redis is loading", func() bool {
		st, raw, err := srv.API.do("GET", "/readyz", nil)
		body = string(raw)
		return err == nil && st == http.StatusServiceUnavailable && strings.Contains(body, "loading")
	})
	t.Logf("readyz while loading: %s", body)
	st, raw, err := srv.API.do("POST", "/v1/jobs", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "1h"})
	require.NoError(t, err)
	loading := redisLoading(t, r)
	if st != http.StatusServiceUnavailable && !loading {
		t.Logf("Redis finished loading before the submit; status %d", st)
	} else {
		require.Equal(t, http.StatusServiceUnavailable, st, "%s", raw)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(raw, &e))
		require.Equal(t, "unavailable", e.Error.Code)
		require.Contains(t, e.Error.Message, "loading")
	}

	waitFor(t, 60*time.Second, "/readyz to say ready after loading", func() bool {
		st, _, err := srv.API.do("GET", "/readyz", nil)
		return err == nil && st == http.StatusOK
	})
	require.False(t, redisLoading(t, r))
	t.Logf("ready again at %s", time.Now().Format(time.RFC3339Nano))
	listed := map[string]bool{}
	for _, j := range srv.API.jobs(t) {
		listed[j.ID] = true
	}
	for _, id := range ids {
		require.True(t, listed[id], "job %s still there", id)
		require.Equal(t, greenq.StateSucceeded, srv.API.waitFinal(t, id, 30*time.Second).State, "job %s", id)
	}
	j := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-after-loading", DurationEstimateS: 1, Deadline: "2m",
		Command: []string{"echo", "after loading"}})[0]
	j = srv.API.waitFinal(t, j.ID, 60*time.Second)
	require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
	require.Equal(t, "worker", j.Run.Worker)
	require.True(t, srv.Running(), "the server kept running")
}
