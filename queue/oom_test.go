package queue

import (
	"context"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// privateRedis starts a redis-server of the test's own on a free loopback
// port, for settings that must not touch the shared test server.
func privateRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Private(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestSubmitWhenRedisIsFull(t *testing.T) {
	t.Parallel()
	rdb := privateRedis(t)
	ctx := context.Background()
	s, err := NewStore(rdb, Config{Now: func() time.Time { return t0 }, Regions: []greenq.Region{{Name: "r1"}}})
	require.NoError(t, err)
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", "1").Err())

	for _, req := range []greenq.SubmitRequest{
		{Command: []string{"true"}, Deadline: "24h"},
		{Command: []string{"true"}, Deadline: "24h", Trials: 3, Key: "idem"},
	} {
		_, err = s.Submit(ctx, "alice", req)
		requireCode(t, err, greenq.CodeUnavailable)
		require.ErrorContains(t, err, "maxmemory")
	}

	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", "0").Err())
	n, err := rdb.DBSize(ctx).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a refused submit leaves nothing behind")
	jobs, err := s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", Key: "idem"})
	require.NoError(t, err, "the same key works once there is room")
	require.Len(t, jobs, 1)
}
