package queue

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// t0 is the tests' fixed "now": on an hour boundary, so slot starts are
// easy to read.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// testLogger sends logs to t.Log until the test ends (background
// goroutines may outlive it by a moment).
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

// bundle is what most tests need: a store on a unique prefix with two
// unique regions and a settable clock.
type bundle struct {
	s       *Store
	rdb     *redis.Client
	clk     *clock
	prefix  string
	regions []string
}

func setup(t testing.TB, mod ...func(*Config)) *bundle {
	t.Helper()
	rdb := redistest.Client(t)
	b := &bundle{rdb: rdb, clk: newClock(t0), prefix: redistest.Unique("qt"),
		regions: []string{redistest.Unique("r"), redistest.Unique("r")}}
	cfg := Config{Prefix: b.prefix, Now: b.clk.Now, Logger: testLogger(t)}
	for i, r := range b.regions {
		cfg.Regions = append(cfg.Regions, greenq.Region{Name: r, Zone: "Z", PUE: 1, GPUPriceUSDPerHour: float64(2 + i)})
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewStore(rdb, cfg)
	require.NoError(t, err)
	b.s = s
	t.Cleanup(func() { cleanKeys(rdb, b.prefix) })
	return b
}

// cleanKeys deletes this test's keys (never the whole database: other
// packages share it).
func cleanKeys(rdb redis.UniversalClient, prefix string) {
	ctx := context.Background()
	it := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for it.Next(ctx) {
		batch = append(batch, it.Val())
		if len(batch) == 500 {
			rdb.Del(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Del(ctx, batch...)
	}
}

// submit stores one job and returns it.
func (b *bundle) submit(t testing.TB, tenant string, mod ...func(*greenq.SubmitRequest)) *greenq.Job {
	t.Helper()
	req := greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", DurationEstimateS: 3600}
	for _, m := range mod {
		m(&req)
	}
	jobs, err := b.s.Submit(context.Background(), tenant, req)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	return jobs[0]
}

// force puts job id into state st, bypassing the state machine (to set up
// a case), with a plan and run that fit the state.
func (b *bundle) force(t *testing.T, id string, st greenq.State) *greenq.Job {
	t.Helper()
	r, err := b.s.update(context.Background(), id, func(r *row) error {
		j := r.job
		j.State = st
		if st != greenq.StatePending && j.Plan == nil {
			j.Plan = &greenq.Plan{Region: b.regions[0], Start: b.clk.Now(), End: b.clk.Now().Add(time.Hour)}
		}
		if (st == greenq.StateRunning || st.Final()) && j.Run == nil {
			j.Run = &greenq.Run{Region: b.regions[0], Worker: "w", StartedAt: b.clk.Now(), Attempt: 1}
		}
		r.resv = false
		return nil
	})
	require.NoError(t, err)
	return r.job
}

// plan gives job id a plan starting at start in region.
func (b *bundle) plan(t *testing.T, id, region string, start time.Time, urgent bool) {
	t.Helper()
	n, err := b.s.SetPlans(context.Background(), map[string]greenq.Plan{
		id: {Region: region, Start: start, End: start.Add(time.Hour), Urgent: urgent, Reason: "test"},
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func requireCode(t *testing.T, err error, code greenq.ErrorCode) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, greenq.ErrorCodeOf(err), "error: %v", err)
}
