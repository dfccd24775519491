package redistest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestURLStartsAServer: without GREENQ_TEST_REDIS_URL the helper starts a
// server of the test binary's own, without persistence, and shares it.
func TestURLStartsAServer(t *testing.T) {
	t.Setenv(EnvURL, "")
	u := URL(t)
	require.Regexp(t, `^redis://127\.0\.0\.1:\d+/0$`, u)
	require.Equal(t, u, URL(t), "one server per test binary")
	c := Client(t)
	ctx := context.Background()
	key := Unique("redistest")
	require.NoError(t, c.Set(ctx, key, "v", 0).Err())
	require.Equal(t, "v", c.Get(ctx, key).Val())
	require.Equal(t, map[string]string{"save": "", "appendonly": "no"}, map[string]string{
		"save":       c.ConfigGet(ctx, "save").Val()["save"],
		"appendonly": c.ConfigGet(ctx, "appendonly").Val()["appendonly"],
	})
}

// TestPrivateServerStops: a private server takes its own arguments and is
// gone once closed.
func TestPrivateServerStops(t *testing.T) {
	s, err := Start("--maxmemory", "3mb")
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	ctx := context.Background()
	require.Equal(t, "3145728", c.ConfigGet(ctx, "maxmemory").Val()["maxmemory"])
	s.Close()
	require.Error(t, c.Ping(ctx).Err(), "server stopped")
}

// TestBinaryMissing: without redis-server on PATH the failure names it
// and how to install it.
func TestBinaryMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start()
	require.EqualError(t, err, Missing)
	require.Contains(t, Missing, "apt-get install redis-server")
}
