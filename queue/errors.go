package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// ErrFenced is returned (wrapped) by writes made under a fencing token that
// a newer leader has superseded: the caller is no longer the leader and must
// stop releasing or planning.
var ErrFenced = &greenq.Error{Code: greenq.CodeConflict, Message: "fencing token superseded: this replica is no longer the leader"}

// ErrReleasing is returned (wrapped) by Start for the task of a release
// that is under way: the release loop has enqueued the task and is about to
// mark the job released, and a quick worker took the task first. The
// worker retries Start shortly; it must not drop the task.
var ErrReleasing = &greenq.Error{Code: greenq.CodeUnavailable, Message: "the job's release is under way: start again shortly"}

type fenceKey struct{}

// WithFence returns ctx carrying a leader's fencing token. Store writes made
// by the planner and the release loop (SetPlans, releases, expiry) under
// such a context succeed only while token is still the current one. Lease.Run
// hands its function a context that already carries the token.
func WithFence(ctx context.Context, token int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, token)
}

// FenceFrom returns the fencing token ctx carries, if any.
func FenceFrom(ctx context.Context) (int64, bool) {
	t, ok := ctx.Value(fenceKey{}).(int64)
	return t, ok
}

func fenceArg(ctx context.Context) string {
	if t, ok := FenceFrom(ctx); ok {
		return fmt.Sprint(t)
	}
	return ""
}

// redisErr wraps a Redis failure with op. Out of memory (maxmemory), the
// LOADING phase after a restart and an unreachable server become
// CodeUnavailable (HTTP 503): the request may be retried later and nothing
// was stored.
func redisErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ge *greenq.Error
	if errors.As(err, &ge) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "OOM "):
		return fmt.Errorf("%s: %w", op, greenq.Errorf(greenq.CodeUnavailable,
			"the job store is full (Redis maxmemory reached); nothing was stored, try again later or ask the operator to raise maxmemory"))
	case strings.HasPrefix(msg, "LOADING"):
		return fmt.Errorf("%s: %w", op, greenq.Errorf(greenq.CodeUnavailable,
			"the job store is loading its data after a restart; try again in a moment"))
	case strings.HasPrefix(msg, "READONLY"), strings.HasPrefix(msg, "MASTERDOWN"), strings.HasPrefix(msg, "CLUSTERDOWN"),
		strings.HasPrefix(msg, "TRYAGAIN"):
		return fmt.Errorf("%s: %w", op, greenq.Errorf(greenq.CodeUnavailable, "the job store is failing over (%s); try again in a moment", firstWord(msg)))
	case isNetErr(err):
		return fmt.Errorf("%s: %w", op, greenq.Errorf(greenq.CodeUnavailable, "the job store (Redis) is unreachable: %v", err))
	}
	return fmt.Errorf("%s: %w", op, err)
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, net.ErrClosed)
}

func notFound(id string) error {
	return fmt.Errorf("job %s: %w", id, greenq.ErrNotFound)
}

func conflict(format string, args ...any) error {
	return greenq.Errorf(greenq.CodeConflict, format, args...)
}
