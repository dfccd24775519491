package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "GREENQ_TEST_REDIS_URL"

// URL returns the test Redis URL, skipping the test when none is set (plain
// `go test` without `make test`).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip(EnvURL + " is not set: run `make test`, which starts redis-server")
	}
	return u
}

// Client returns a go-redis client for the test server, closed at cleanup.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping test redis: %v", err)
	}
	return c
}

// AsynqOpt returns asynq connection options for the test server.
func AsynqOpt(t testing.TB) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	return opt
}

// Unique returns a short random name with prefix, for key prefixes and
// region names that no other test uses.
func Unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b[:])
}
