package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
	"github.com/redis/go-redis/v9"
)

// Config configures a Store.
type Config struct {
	// Prefix starts every Redis key and channel greenq writes. Default
	// "greenq". Several greenq installations may share one Redis with
	// different prefixes.
	Prefix string
	// Regions are the configured regional pools; submissions may name only
	// these. May be empty for a store used only by workers.
	Regions []greenq.Region
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the store's warnings. Default: discard.
	Logger *slog.Logger
	// LogBytes bounds what is kept of each job's output: all of it up to
	// LogBytes; beyond, the first half as written and the latest half, with
	// a line "… N bytes cut …" between them (see Log). Only writers (the
	// workers' stores) use it. Default DefaultLogBytes (1 MiB).
	LogBytes int
	// Policy is the one planner configuration of the server: the store's
	// planning adapter (Planning) plans with it, for the provisional plan a
	// job gets at submit, for the leader's rounds (Planner) and for
	// Explain. Default: the policy defaults.
	Policy policy.Config
}

// DefaultLogBytes is Config.LogBytes's default: 1 MiB, half head, half
// tail.
const DefaultLogBytes = 1 << 20

// idemGrace is how long an idempotency key outlives its jobs' deadline.
const idemGrace = 24 * time.Hour

// maxCASRetries bounds the compare-and-set loop of one transition; each
// retry means another writer changed the job in between.
const maxCASRetries = 32

// Store keeps job records, their state machine and the shared state of
// server replicas and workers in Redis. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	k       keys
	regions []greenq.Region
	names   []string
	now     func() time.Time
	log     *slog.Logger
	logHead int // bytes of output kept from the start
	logTail int // bytes of the latest output kept
	plan    *planning.Planner
	prov    *planning.Provisional // submit's provisional plans

	wmu    sync.Mutex      // guards wbusy, wagain
	wbusy  map[string]bool // a wake publish of this kind is in flight
	wagain map[string]bool // and another was asked for meanwhile
}

// NewStore returns a store over rdb (a single server, Sentinel or Cluster
// client). It validates cfg; it does not contact Redis (see Ping).
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("new store: redis client is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "greenq"
	}
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("new store: Prefix: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogBytes == 0 {
		cfg.LogBytes = DefaultLogBytes
	}
	if cfg.LogBytes < 2 {
		return nil, fmt.Errorf("new store: LogBytes: must be at least 2, got %d", cfg.LogBytes)
	}
	s := &Store{rdb: rdb, k: newKeys(cfg.Prefix), now: cfg.Now, logHead: cfg.LogBytes / 2,
		logTail: cfg.LogBytes - cfg.LogBytes/2, plan: planning.New(cfg.Policy),
		log: cfg.Logger.With("component", "queue"), wbusy: map[string]bool{}, wagain: map[string]bool{}}
	for i, r := range cfg.Regions {
		if r.Name == "" {
			return nil, fmt.Errorf("new store: Regions[%d].Name: is empty", i)
		}
		if slices.Contains(s.names, r.Name) {
			return nil, fmt.Errorf("new store: Regions[%d].Name: %q appears twice", i, r.Name)
		}
		s.names = append(s.names, r.Name)
		s.regions = append(s.regions, r)
	}
	s.prov = s.plan.Provisional(s.regions, s, s.log)
	return s, nil
}

// Ping checks that Redis answers and serves data: it fails (CodeUnavailable)
// while Redis is unreachable or still LOADING its dataset after a restart.
func (s *Store) Ping(ctx context.Context) error {
	// PING is answered even while loading; a read is not.
	if err := s.rdb.Get(ctx, s.k.fence()).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("ping redis", err)
	}
	return nil
}
