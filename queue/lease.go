package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// LeaseConfig configures a Lease.
type LeaseConfig struct {
	// Prefix is the key prefix; it must match the Store's. Default "greenq".
	Prefix string
	// Name tells leases apart; one leader per name. Default "leader".
	Name string
	// TTL is how long a lease lives without renewal: a dead leader's
	// successor takes over within TTL + Retry. Default 10s.
	TTL time.Duration
	// Renew is how often the leader renews. Default TTL/3.
	Renew time.Duration
	// Retry is how often a follower tries to take the lease. Default TTL/3.
	Retry time.Duration
	// Logger receives leadership changes. Default: discard.
	Logger *slog.Logger
}

// Lease elects one leader among server replicas with a Redis lease (SET NX
// PX under a random holder token) and hands each new leader a fencing token
// from a counter that only grows. Store writes made under that token
// (WithFence) fail once a newer leader exists, so a deposed leader that has
// not noticed yet cannot plan or release.
type Lease struct {
	rdb   redis.UniversalClient
	key   string
	fence string
	cfg   LeaseConfig
	log   *slog.Logger
	token int64 // current fencing token while leader, else 0
}

// Lease scripts. acquire returns the new fencing token, or 0 when another
// holder has the lease; renew returns the current token while the caller
// still holds the lease, else 0.
var (
	acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
`)
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return 0
`)
	resignScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
)

// NewLease returns a lease over rdb; it validates cfg.
func NewLease(rdb redis.UniversalClient, cfg LeaseConfig) (*Lease, error) {
	if rdb == nil {
		return nil, errors.New("new lease: redis client is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "greenq"
	}
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("new lease: Prefix: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = "leader"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 10*time.Millisecond {
		return nil, fmt.Errorf("new lease: TTL: must be at least 10ms, got %s", cfg.TTL)
	}
	if cfg.Renew == 0 {
		cfg.Renew = cfg.TTL / 3
	}
	if cfg.Renew <= 0 || cfg.Renew >= cfg.TTL {
		return nil, fmt.Errorf("new lease: Renew: must be positive and below TTL (%s), got %s", cfg.TTL, cfg.Renew)
	}
	if cfg.Retry == 0 {
		cfg.Retry = cfg.TTL / 3
	}
	if cfg.Retry <= 0 {
		return nil, fmt.Errorf("new lease: Retry: must be positive, got %s", cfg.Retry)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	k := newKeys(cfg.Prefix)
	return &Lease{rdb: rdb, key: k.lease(cfg.Name), fence: k.fence(), cfg: cfg,
		log: cfg.Logger.With("component", "lease")}, nil
}

// Fence returns the fencing token while this replica leads, else 0.
func (l *Lease) Fence() int64 { return atomic.LoadInt64(&l.token) }

// Run campaigns for the lease until ctx ends. Each time it wins, it calls
// fn with a context that carries the fencing token (WithFence) and is
// cancelled as soon as the lease is lost or cannot be confirmed before it
// would expire; Run waits for fn to return before campaigning again. On
// return it gives up the lease so a successor need not wait for the TTL.
func (l *Lease) Run(ctx context.Context, fn func(leaderCtx context.Context)) error {
	holder := randomToken()
	for {
		sent := time.Now()
		token, err := l.acquire(ctx, holder)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("campaign for lease", "err", err)
		}
		if token > 0 {
			l.lead(ctx, holder, token, sent, fn)
		}
		if ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(l.cfg.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (l *Lease) acquire(ctx context.Context, holder string) (int64, error) {
	return acquireScript.Run(ctx, l.rdb, []string{l.key, l.fence}, holder, l.cfg.TTL.Milliseconds()).Int64()
}

// lead runs fn while the lease holds.
func (l *Lease) lead(ctx context.Context, holder string, token int64, sent time.Time, fn func(context.Context)) {
	// The lease is ours until at least sent + TTL: Redis counted the TTL
	// from a moment after we sent the command. Lease timing runs on the
	// real clock, whatever clock the rest of greenq is given.
	validUntil := sent.Add(l.cfg.TTL)
	atomic.StoreInt64(&l.token, token)
	l.log.Info("leading", "fence", token)
	leaderCtx, cancel := context.WithCancel(WithFence(ctx, token))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(leaderCtx)
	}()
	tick := time.NewTicker(l.cfg.Renew)
	defer tick.Stop()
	lost := func(why string, args ...any) {
		atomic.StoreInt64(&l.token, 0)
		cancel()
		<-done
		l.log.Info("stepped down: "+why, args...)
	}
	for {
		// Step down a little before the lease could expire unconfirmed, so
		// our leader work stops before a successor's starts.
		guard := time.NewTimer(time.Until(validUntil) - l.cfg.TTL/10)
		select {
		case <-ctx.Done():
			guard.Stop()
			atomic.StoreInt64(&l.token, 0)
			cancel()
			<-done
			// Hand over at once rather than after the TTL.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = resignScript.Run(rctx, l.rdb, []string{l.key}, holder).Err()
			rcancel()
			return
		case <-done:
			// fn gave up leadership work; keep the lease but nothing to do.
			guard.Stop()
			atomic.StoreInt64(&l.token, 0)
			cancel()
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = resignScript.Run(rctx, l.rdb, []string{l.key}, holder).Err()
			rcancel()
			return
		case <-guard.C:
			lost("lease could not be renewed in time")
			return
		case <-tick.C:
			guard.Stop()
			sent := time.Now()
			rctx, rcancel := context.WithDeadline(ctx, validUntil)
			cur, err := renewScript.Run(rctx, l.rdb, []string{l.key, l.fence}, holder, l.cfg.TTL.Milliseconds()).Int64()
			rcancel()
			switch {
			case err != nil:
				if ctx.Err() == nil {
					l.log.Warn("renew lease", "err", err)
				}
			case cur != token:
				lost("lease taken over", "fence", token, "current", cur)
				return
			default:
				validUntil = sent.Add(l.cfg.TTL)
			}
		}
	}
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
