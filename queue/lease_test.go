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

// ownClient returns a client of its own, so that closing it stands for a
// replica dying.
func ownClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redistest.URL(t))
	require.NoError(t, err)
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestLeaseFailover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := LeaseConfig{Prefix: b.prefix, TTL: 300 * time.Millisecond, Renew: 60 * time.Millisecond, Retry: 30 * time.Millisecond, Logger: testLogger(t)}

	type term struct {
		fence int64
		ended chan struct{}
	}
	run := func(l *Lease) <-chan term {
		terms := make(chan term, 4)
		go func() {
			_ = l.Run(ctx, func(leaderCtx context.Context) {
				f, ok := FenceFrom(leaderCtx)
				require.True(t, ok)
				tm := term{fence: f, ended: make(chan struct{})}
				terms <- tm
				<-leaderCtx.Done()
				close(tm.ended)
			})
		}()
		return terms
	}
	wait := func(c <-chan term, what string) term {
		t.Helper()
		select {
		case tm := <-c:
			return tm
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not happen", what)
		}
		return term{}
	}

	ca := ownClient(t)
	la, err := NewLease(ca, cfg)
	require.NoError(t, err)
	lb, err := NewLease(ownClient(t), cfg)
	require.NoError(t, err)

	a := wait(run(la), "first leader")
	require.Equal(t, a.fence, la.Fence())
	bTerms := run(lb)
	// While a renews, b stays a follower (several TTLs).
	select {
	case <-bTerms:
		t.Fatal("two leaders at once")
	case <-time.After(4 * cfg.TTL):
	}

	// a dies: its connection is gone, so it can renew no more.
	require.NoError(t, ca.Close())
	select {
	case <-a.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("deposed leader kept running")
	}
	bt := wait(bTerms, "take-over")
	require.Greater(t, bt.fence, a.fence)
	require.Zero(t, la.Fence())

	// The old leader's writes are refused; the new one's go through.
	j := b.submit(t, "alice")
	plans := map[string]greenq.Plan{j.ID: {Region: b.regions[0], Start: t0, End: t0.Add(time.Hour)}}
	_, err = b.s.SetPlans(WithFence(context.Background(), a.fence), plans)
	require.ErrorIs(t, err, ErrFenced)
	requireCode(t, err, greenq.CodeConflict)
	require.Equal(t, greenq.StatePending, mustGet(t, b, j.ID).State)
	n, err := b.s.SetPlans(WithFence(context.Background(), bt.fence), plans)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// Stopping the leader hands the lease back at once.
	cancel()
	<-bt.ended
	require.Eventually(t, func() bool {
		return b.rdb.Exists(context.Background(), newKeys(b.prefix).lease("leader")).Val() == 0
	}, 5*time.Second, 10*time.Millisecond)
}

func TestLeaseConfig(t *testing.T) {
	t.Parallel()
	rdb := ownClient(t)
	_, err := NewLease(rdb, LeaseConfig{TTL: time.Second, Renew: 2 * time.Second})
	require.ErrorContains(t, err, "Renew")
	_, err = NewLease(rdb, LeaseConfig{TTL: time.Millisecond})
	require.ErrorContains(t, err, "TTL")
	l, err := NewLease(rdb, LeaseConfig{})
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, l.cfg.TTL)
}
