package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "GREENQ_TEST_REDIS_URL"

var (
	own     sync.Once
	ownURL  string
	ownErr  error
	started *Server
)

// URL returns the test Redis URL: $GREENQ_TEST_REDIS_URL, or the URL of a
// redis-server this test binary starts once and shares between its tests.
// It fails the test when neither is possible.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	own.Do(func() {
		started, ownErr = Start()
		if ownErr == nil {
			ownURL = started.URL
		}
	})
	if ownErr != nil {
		t.Fatalf("no test Redis: %s is unset and %v", EnvURL, ownErr)
	}
	return ownURL
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
