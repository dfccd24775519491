package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/refresh"
)

// fakeProvider answers with fetch, after delay when set (giving up when
// its context ends, unless deaf); calls counts fetches.
type fakeProvider struct {
	mu    sync.Mutex
	calls int
	fetch func(now time.Time) (forecast.Series, error)
	delay time.Duration
	deaf  bool // ignores its context's deadline
}

var _ forecast.Provider = (*fakeProvider)(nil)

func (f *fakeProvider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	f.mu.Lock()
	f.calls++
	fn, delay, deaf := f.fetch, f.delay, f.deaf
	f.mu.Unlock()
	if delay > 0 {
		if deaf {
			time.Sleep(delay)
		} else {
			select {
			case <-ctx.Done():
				return forecast.Series{}, fmt.Errorf("fetch %s: %w", zone, ctx.Err())
			case <-time.After(delay):
			}
		}
	}
	return fn(time.Now())
}

// slow makes every later fetch answer after delay.
func (f *fakeProvider) slow(delay time.Duration, deaf bool) {
	f.mu.Lock()
	f.delay, f.deaf = delay, deaf
	f.mu.Unlock()
}

func (f *fakeProvider) set(fn func(time.Time) (forecast.Series, error)) {
	f.mu.Lock()
	f.fetch = fn
	f.mu.Unlock()
}

func (f *fakeProvider) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// memStore is an in-memory Store.
type memStore struct {
	mu     sync.Mutex
	series map[string]forecast.Series
	puts   int
}

func (m *memStore) PutSeries(_ context.Context, s forecast.Series) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.series == nil {
		m.series = map[string]forecast.Series{}
	}
	m.series[s.Region] = s
	m.puts++
	return nil
}

func (m *memStore) Series(_ context.Context, region string) (forecast.Series, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.series[region]
	if !ok {
		return forecast.Series{}, errors.New("not found")
	}
	return s, nil
}

func (m *memStore) get(region string) forecast.Series {
	s, _ := m.Series(context.Background(), region)
	return s
}

// good returns a provider series: 24 h of actuals and 48 h of forecast,
// hourly, a daily cycle around level.
func good(level float64) func(time.Time) (forecast.Series, error) {
	return func(now time.Time) (forecast.Series, error) {
		start := now.Truncate(time.Hour).Add(-24 * time.Hour)
		s := forecast.Series{Source: "fake", Signal: forecast.SignalAverage, IssuedAt: now}
		for i := 0; i < 72; i++ {
			t := start.Add(time.Duration(i) * time.Hour)
			kind := forecast.KindForecast
			if !t.Add(time.Hour).After(now) {
				kind = forecast.KindActual
			}
			s.Points = append(s.Points, forecast.Point{Start: t, End: t.Add(time.Hour), GCO2PerKWh: level + float64(t.Hour()), Kind: kind})
		}
		return s, nil
	}
}

func fail(err error) func(time.Time) (forecast.Series, error) {
	return func(time.Time) (forecast.Series, error) { return forecast.Series{}, err }
}

// logCounter counts warn records.
type logCounter struct {
	mu    sync.Mutex
	warns []string
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		l.mu.Lock()
		l.warns = append(l.warns, r.Message)
		l.mu.Unlock()
	}
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.warns)
}

type bundle struct {
	prov    *fakeProvider
	store   *memStore
	reg     *prometheus.Registry
	logs    *logCounter
	mu      sync.Mutex
	changes []string
	cancel  context.CancelFunc
	done    chan error
}

// start runs a Refresher over one region "eu" served by the fake provider.
func start(t *testing.T, fetch func(time.Time) (forecast.Series, error), tweak func(*refresh.Config)) *bundle {
	t.Helper()
	b := &bundle{prov: &fakeProvider{fetch: fetch}, store: &memStore{}, reg: prometheus.NewRegistry(), logs: &logCounter{}, done: make(chan error, 1)}
	cfg := refresh.Config{
		Regions:    []refresh.Region{{Name: "eu", Zone: "SE", Provider: "fake"}},
		Providers:  map[string]forecast.Provider{"fake": b.prov},
		Store:      b.store,
		Registerer: b.reg,
		Logger:     slog.New(b.logs),
		Jitter:     func() float64 { return 0.5 },
		OnChange: func(region string) {
			b.mu.Lock()
			b.changes = append(b.changes, region)
			b.mu.Unlock()
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := refresh.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- r.Run(ctx) }()
	synctest.Wait()
	return b
}

func (b *bundle) stop(t *testing.T) {
	b.cancel()
	require.ErrorIs(t, <-b.done, context.Canceled)
}

func (b *bundle) nChanges() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.changes)
}

// fallbacks sums greenq_forecast_fallback_total for reason.
func (b *bundle) fallbacks(reason string) float64 {
	mfs, err := b.reg.Gather()
	if err != nil {
		panic(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "greenq_forecast_fallback_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func TestRefreshOnScheduleExtendsAndCaches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := start(t, good(100), func(c *refresh.Config) { c.Schedules = map[string]string{"fake": "@every 15m"} })
		defer b.stop(t)
		s := b.store.get("eu")
		require.Equal(t, "fake", s.Source)
		require.Equal(t, "eu", s.Region)
		require.NoError(t, s.Validate())
		now := time.Now()
		require.False(t, s.End().Before(now.Add(168*time.Hour)), "extended to the horizon")
		last := s.Points[len(s.Points)-1]
		require.Equal(t, forecast.KindEstimate, last.Kind)
		p, ok := s.At(now.Add(time.Hour))
		require.True(t, ok)
		require.Equal(t, forecast.KindForecast, p.Kind, "provider points are kept")
		require.Equal(t, 1, b.prov.count())
		require.Equal(t, 1, b.nChanges())

		time.Sleep(15 * time.Minute)
		synctest.Wait()
		require.Equal(t, 2, b.prov.count(), "refetched after the TTL on the schedule")
		require.Equal(t, 2, b.nChanges(), "new series lands")
		require.Zero(t, b.logs.count())
	})
}

func TestFallbackChain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := start(t, good(100), func(c *refresh.Config) {
			c.Schedules = map[string]string{"fake": "@every 15m"}
			c.MaxBackoff = 10 * time.Minute
			c.MinBackoff = 10 * time.Minute
		})
		defer b.stop(t)
		down := &forecast.StatusError{Provider: "fake", Code: 503, Body: "down"}
		b.prov.set(fail(fmt.Errorf("fetch: %w", down)))

		time.Sleep(15 * time.Minute)
		synctest.Wait()
		s := b.store.get("eu")
		require.Equal(t, "fake:last-good", s.Source)
		require.NoError(t, s.Validate())
		require.Equal(t, 1.0, b.fallbacks("http_error"))
		require.Equal(t, 1, b.logs.count())

		time.Sleep(2 * time.Hour)
		synctest.Wait()
		require.Equal(t, "fake:last-good", b.store.get("eu").Source)
		require.Equal(t, 1, b.logs.count(), "logged once, not per request")
		require.Greater(t, b.fallbacks("http_error"), 1.0, "every failed fetch counts")

		// Past StaleAfter (6 h) the last good series is dropped for the
		// forecaster over history.
		time.Sleep(5 * time.Hour)
		synctest.Wait()
		s = b.store.get("eu")
		require.Equal(t, "greenq-forecaster (fake down)", s.Source)
		require.NoError(t, s.Validate())
		require.NotEmpty(t, s.Points)
		now := time.Now()
		p, ok := s.At(now.Add(48 * time.Hour))
		require.True(t, ok)
		require.Equal(t, forecast.KindEstimate, p.Kind)
		require.Equal(t, 2, b.logs.count())

		// Recovery.
		b.prov.set(good(50))
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		require.Equal(t, "fake", b.store.get("eu").Source)
	})
}

func TestNoSignalWithoutHistory(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := start(t, fail(fmt.Errorf("parse: %w", forecast.ErrBadPayload)), nil)
		defer b.stop(t)
		s := b.store.get("eu")
		require.Equal(t, "none", s.Source)
		require.Empty(t, s.Points)
		require.NoError(t, s.Validate())
		require.Equal(t, 1.0, b.fallbacks("garbage"))
	})
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rl := &forecast.RateLimitError{Provider: "fake", RetryAfter: 50 * time.Minute}
		b := start(t, fail(fmt.Errorf("fetch: %w", rl)), func(c *refresh.Config) {
			c.Schedules = map[string]string{"fake": "@every 5m"}
		})
		defer b.stop(t)
		require.Equal(t, 1, b.prov.count())
		require.Equal(t, 1.0, b.fallbacks("rate_limited"))
		time.Sleep(45 * time.Minute)
		synctest.Wait()
		require.Equal(t, 1, b.prov.count(), "no fetch before Retry-After")
		b.prov.set(good(80))
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.Equal(t, 2, b.prov.count())
		require.Equal(t, "fake", b.store.get("eu").Source)
	})
}

func TestStaleProviderSeries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		old := func(now time.Time) (forecast.Series, error) {
			s, _ := good(100)(now.Add(-72 * time.Hour))
			return s, nil
		}
		b := start(t, old, nil)
		defer b.stop(t)
		require.Equal(t, 1.0, b.fallbacks("stale"))
		require.NotEqual(t, "fake", b.store.get("eu").Source)
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{fetch: good(1)}
	base := func() refresh.Config {
		return refresh.Config{
			Regions:   []refresh.Region{{Name: "eu", Zone: "SE", Provider: "fake"}},
			Providers: map[string]forecast.Provider{"fake": p},
			Store:     &memStore{},
		}
	}
	for _, tc := range []struct {
		field string
		tweak func(*refresh.Config)
	}{
		{"regions", func(c *refresh.Config) { c.Regions = nil }},
		{"store", func(c *refresh.Config) { c.Store = nil }},
		{"regions[0].provider", func(c *refresh.Config) { c.Regions[0].Provider = "nope" }},
		{"regions[1].name", func(c *refresh.Config) { c.Regions = append(c.Regions, c.Regions[0]) }},
		{"providers.fake.schedule", func(c *refresh.Config) { c.Schedules = map[string]string{"fake": "every now and then"} }},
	} {
		c := base()
		tc.tweak(&c)
		_, err := refresh.New(c)
		require.Error(t, err, tc.field)
		require.True(t, strings.Contains(err.Error(), tc.field), "%s: %v", tc.field, err)
	}
	_, err := refresh.New(base())
	require.NoError(t, err)
}

// TestSlowProvider: a provider that answers only after the refresh timeout
// (30 s), whether it honours its context or not, counts as down after
// exactly the timeout: the region falls back to the last good series at
// once, instead of waiting for the answer, and its late answer is dropped.
func TestSlowProvider(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		deaf bool
	}{
		{"honours-context", false},
		{"ignores-context", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := start(t, good(100), func(c *refresh.Config) {
					c.Schedules = map[string]string{"fake": "@every 15m"}
					c.Timeout = 30 * time.Second
				})
				defer b.stop(t)
				require.Equal(t, "fake", b.store.get("eu").Source)
				b.prov.slow(2*time.Minute, tc.deaf)

				time.Sleep(15*time.Minute + 29*time.Second)
				synctest.Wait()
				require.Equal(t, 2, b.prov.count(), "the scheduled fetch is under way")
				require.Equal(t, "fake", b.store.get("eu").Source, "the last series serves while the fetch is under way")

				time.Sleep(2 * time.Second) // past the timeout
				synctest.Wait()
				s := b.store.get("eu")
				require.Equal(t, "fake:last-good", s.Source)
				require.NoError(t, s.Validate())
				require.Equal(t, 1.0, b.fallbacks("timeout"))

				// The late answer (good data, at 17 min) must not land.
				time.Sleep(2 * time.Minute)
				synctest.Wait()
				require.Equal(t, "fake:last-good", b.store.get("eu").Source)

				// A provider fast again recovers on the next schedule after
				// its back-off.
				b.prov.slow(0, false)
				time.Sleep(30 * time.Minute)
				synctest.Wait()
				require.Equal(t, "fake", b.store.get("eu").Source)
			})
		})
	}
}

// TestGarbageAfterGoodAnswers: a provider that answered well twice starts
// returning garbage (a payload its parser rejects, or a series that fails
// Validate): the region serves the last good answer, the second, marked
// last-good, then greenq's own forecaster once that is stale; each
// garbage answer counts as a "garbage" fallback, logged once.
func TestGarbageAfterGoodAnswers(t *testing.T) {
	t.Parallel()
	nan := func(now time.Time) (forecast.Series, error) {
		s, _ := good(300)(now)
		s.Points[30].GCO2PerKWh = math.NaN()
		return s, nil
	}
	for _, tc := range []struct {
		name    string
		garbage func(time.Time) (forecast.Series, error)
	}{
		{"unparsable", fail(fmt.Errorf("decode: %w", forecast.ErrBadPayload))},
		{"invalid-series", nan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := start(t, good(100), func(c *refresh.Config) { c.Schedules = map[string]string{"fake": "@every 15m"} })
				defer b.stop(t)
				b.prov.set(good(200))
				time.Sleep(15 * time.Minute)
				synctest.Wait()
				second := b.store.get("eu")
				require.Equal(t, "fake", second.Source)

				b.prov.set(tc.garbage)
				time.Sleep(15 * time.Minute)
				synctest.Wait()
				s := b.store.get("eu")
				require.Equal(t, "fake:last-good", s.Source)
				require.NoError(t, s.Validate())
				now := time.Now()
				p, ok := s.At(now)
				require.True(t, ok)
				want, _ := second.At(now)
				require.Equal(t, want.GCO2PerKWh, p.GCO2PerKWh, "the second good answer serves")
				require.Equal(t, 1.0, b.fallbacks("garbage"))

				time.Sleep(7 * time.Hour) // past StaleAfter
				synctest.Wait()
				s = b.store.get("eu")
				require.Equal(t, "greenq-forecaster (fake down)", s.Source)
				require.NoError(t, s.Validate())
				_, ok = s.At(time.Now().Add(24 * time.Hour))
				require.True(t, ok, "the forecaster covers the horizon")
				require.Greater(t, b.fallbacks("garbage"), 1.0)
				require.Equal(t, 2, b.logs.count(), "one warning per change of state")
			})
		})
	}
}

// TestPartialAnswerIsKept: a provider whose history call failed but whose
// forecast arrived is not a fallback; the stored series keeps the forecast
// and says the history is missing.
func TestPartialAnswerIsKept(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		partial := func(now time.Time) (forecast.Series, error) {
			s, _ := good(100)(now)
			var fc []forecast.Point
			for _, p := range s.Points {
				if p.Kind == forecast.KindForecast {
					fc = append(fc, p)
				}
			}
			s.Points = fc
			down := fmt.Errorf("fetch history SE: %w", &forecast.StatusError{Provider: "fake", Code: 401, Body: "plan"})
			s.Missing = []forecast.Gap{forecast.MissingPart(forecast.PartHistory, now.Add(-24*time.Hour), now, down)}
			return s, nil
		}
		b := start(t, partial, nil)
		defer b.stop(t)
		s := b.store.get("eu")
		require.Equal(t, "fake", s.Source, "the provider's forecast is used")
		require.True(t, s.Lacks(forecast.PartHistory))
		require.Equal(t, 401, s.Missing[0].Status)
		p, ok := s.At(time.Now().Add(time.Hour))
		require.True(t, ok)
		require.Equal(t, forecast.KindForecast, p.Kind)
		require.Zero(t, b.fallbacks("http_error"))
		require.Zero(t, b.logs.count())
	})
}
