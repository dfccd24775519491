package queue

import (
	"context"
	"net"
	"os/exec"
	"strconv"
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
	redistest.URL(t) // integration tests only
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
	t.Cleanup(func() { _ = rdb.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Skip("private redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
