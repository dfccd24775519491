package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// TestBatchSubmitStoresNothingWhenOneIsRefused: over the real store, a
// batch whose third job the store refuses (its key was used for another
// job) stores none of its jobs, not even cancelled ones.
func TestBatchSubmitStoresNothingWhenOneIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Unique("apb")
	t.Cleanup(func() {
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	clock := func() time.Time { return testNow }
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Now: clock,
		Regions: []greenq.Region{{Name: "uk", Zone: "GB", PUE: 1.1, GPUPriceUSDPerHour: 2}}})
	require.NoError(t, err)
	srv, err := New(Config{Tokens: testTokens(), RatePerSecond: -1, Now: clock, Logger: testLogger(t)}, store)
	require.NoError(t, err)
	b := &bundle{srv: srv}
	_, err = store.Submit(ctx, "alice", greenq.SubmitRequest{Name: "first", Command: []string{"x"}, Deadline: "4h", Key: "k1"})
	require.NoError(t, err)

	res := b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(`{"jobs":[`+
		`{"name":"a","command":["a"],"deadline":"2h"},`+
		`{"name":"b","command":["b"],"deadline":"3h","trials":2},`+
		`{"name":"c","command":["c"],"deadline":"4h","key":"k1"}]}`))
	require.Equal(t, http.StatusConflict, res.Status, "%s", res.Body)
	code, field, _ := res.err(t)
	require.Equal(t, "conflict", code)
	require.Equal(t, "jobs[2].key", field)
	jobs, _, err := store.List(ctx, queue.ListOptions{})
	require.NoError(t, err)
	require.Len(t, jobs, 1, "only the earlier job: %+v", jobs)
	require.Equal(t, "first", jobs[0].Name)

	res = b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(`{"jobs":[`+
		`{"name":"a","command":["a"],"deadline":"2h"},{"name":"b","command":["b"],"deadline":"3h","trials":2}]}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var list JobList
	res.json(t, &list)
	require.Len(t, list.Jobs, 3)
	jobs, _, err = store.List(ctx, queue.ListOptions{})
	require.NoError(t, err)
	require.Len(t, jobs, 4)
}
