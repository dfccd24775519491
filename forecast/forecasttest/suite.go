package forecasttest

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
)

// Fixture describes one provider's good and empty answers and what a fetch
// over them must return.
type Fixture struct {
	// Zone, From and To are passed to Fetch.
	Zone     string
	From, To time.Time
	// OK maps URL paths to the bodies of a good answer; the longest path
	// prefix matching a request wins. A path with no match answers 404. A
	// key may end in a query ("/api?documentType=A69"): it then matches
	// only requests whose query has those values.
	OK map[string]string
	// Empty is like OK, but the data paths answer with no points, in the
	// provider's own shape.
	Empty map[string]string
	// Keep lists path prefixes (e.g. "/login") that keep answering from OK
	// while the suite breaks every other path.
	Keep []string
	// Signal is the signal the series must carry.
	Signal forecast.Signal
	// MinPoints is the fewest points the good answer must yield.
	MinPoints int
	// Values are points the series must contain: value within 0.5% at start.
	Values map[time.Time]float64
	// Check, when set, inspects every request and returns a complaint ("" when
	// the request is fine), e.g. a missing auth header.
	Check func(r *http.Request) string
	// History lists the path prefixes (with queries, as OK's keys) of the
	// provider's history (actuals) calls, when it makes them apart from its forecast call. The suite then
	// breaks only those (404, 401, 5xx, garbage) and requires the forecast
	// to come back anyway, the history labelled missing.
	History []string
}

type response struct {
	status int
	body   string
	header map[string]string
}

// server answers from routes; mu guards routes so cases can swap them.
type server struct {
	t      *testing.T
	fx     Fixture
	mu     sync.Mutex
	broken func(r *http.Request) (response, bool)
	routes map[string]string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.fx.Check != nil {
		if msg := s.fx.Check(r); msg != "" {
			s.t.Errorf("request %s: %s", r.URL, msg)
		}
	}
	s.mu.Lock()
	broken, routes := s.broken, s.routes
	s.mu.Unlock()
	if broken != nil && !s.kept(r) {
		if resp, ok := broken(r); ok {
			for k, v := range resp.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(resp.status)
			_, _ = w.Write([]byte(resp.body))
			return
		}
	}
	best := ""
	for p := range routes {
		if matches(p, r) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		http.NotFound(w, r)
		return
	}
	body := routes[best]
	if strings.HasPrefix(strings.TrimSpace(body), "<") {
		w.Header().Set("Content-Type", "application/xml")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	_, _ = w.Write([]byte(body))
}

func (s *server) kept(r *http.Request) bool {
	for _, k := range s.fx.Keep {
		if matches(k, r) {
			return true
		}
	}
	return false
}

// matches reports whether pattern, a path prefix optionally followed by
// "?k=v&…", matches r: its path starts with the prefix and its query holds
// every value the pattern names.
func matches(pattern string, r *http.Request) bool {
	path, query, _ := strings.Cut(pattern, "?")
	if !strings.HasPrefix(r.URL.Path, path) {
		return false
	}
	want, err := url.ParseQuery(query)
	if err != nil {
		return false
	}
	got := r.URL.Query()
	for k, vs := range want {
		for _, v := range vs {
			if got.Get(k) != v {
				return false
			}
		}
	}
	return true
}

// RunProviderSuite runs the conformance cases against the provider that
// newProvider points at a test server's base URL. Each case gets a fresh
// provider and server, so caches (tokens, series) do not leak across cases.
func RunProviderSuite(t *testing.T, newProvider func(baseURL string) forecast.Provider, fx Fixture) {
	t.Helper()
	type testCase struct {
		name   string
		routes map[string]string
		broken func(*http.Request) (response, bool)
		ctx    func() context.Context
		ok     bool // the fetch must succeed
		check  func(t *testing.T, s forecast.Series, err error)
	}
	cases := []testCase{
		{name: "good answer", routes: fx.OK, ok: true, check: func(t *testing.T, s forecast.Series, err error) {
			require.NoError(t, err)
			CheckSeries(t, s, fx.Signal)
			require.Empty(t, s.Missing, "a whole answer lacks nothing")
			require.GreaterOrEqual(t, len(s.Points), fx.MinPoints, "points")
			for at, want := range fx.Values {
				p, ok := s.At(at)
				require.True(t, ok, "no point covers %s", at)
				require.True(t, p.Start.Equal(at), "point covering %s starts at %s", at, p.Start)
				require.InEpsilon(t, want, p.GCO2PerKWh+1e-9, 0.005, "value at %s", at)
			}
		}},
		{name: "server error", routes: fx.OK, broken: always(response{status: 503, body: "upstream down"}), check: func(t *testing.T, _ forecast.Series, err error) {
			var se *forecast.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, 503, se.Code)
		}},
		{name: "rate limited", routes: fx.OK, broken: always(response{status: 429, body: `{"error":"slow down"}`, header: map[string]string{"Retry-After": "7"}}), check: func(t *testing.T, _ forecast.Series, err error) {
			var rl *forecast.RateLimitError
			require.ErrorAs(t, err, &rl)
			require.Equal(t, 7*time.Second, rl.RetryAfter)
		}},
		{name: "garbage", routes: fx.OK, broken: always(response{status: 200, body: `{"data": [1, 2, {`}), check: func(t *testing.T, _ forecast.Series, err error) {
			require.ErrorIs(t, err, forecast.ErrBadPayload)
		}},
		{name: "html", routes: fx.OK, broken: always(response{status: 200, body: `<html>maintenance</html>`}), check: func(t *testing.T, _ forecast.Series, err error) {
			require.ErrorIs(t, err, forecast.ErrBadPayload)
		}},
		{name: "empty object", routes: fx.OK, broken: always(response{status: 200, body: `{}`}), check: failsAsData},
		{name: "null", routes: fx.OK, broken: always(response{status: 200, body: `null`}), check: failsAsData},
		{name: "empty data", routes: fx.Empty, check: func(t *testing.T, _ forecast.Series, err error) {
			require.ErrorIs(t, err, forecast.ErrNoData)
		}},
		{name: "cancelled", routes: fx.OK, ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, check: func(t *testing.T, _ forecast.Series, err error) {
			require.ErrorIs(t, err, context.Canceled)
		}},
	}
	for _, hd := range []struct {
		name string
		resp response
	}{
		{"404", response{status: 404, body: `{"error":"not found"}`}},
		{"401", response{status: 401, body: `{"message":"this endpoint is not available on your plan"}`}},
		{"500", response{status: 500, body: "internal error"}},
		{"503", response{status: 503, body: "upstream down"}},
		{"garbage", response{status: 200, body: `{"data": [1, 2, {`}},
	} {
		if len(fx.History) == 0 {
			break
		}
		cases = append(cases, testCase{name: "history " + hd.name + ", forecast up", routes: fx.OK, ok: true, broken: func(r *http.Request) (response, bool) {
			for _, h := range fx.History {
				if matches(h, r) {
					return hd.resp, true
				}
			}
			return response{}, false
		}, check: func(t *testing.T, s forecast.Series, err error) {
			require.NoError(t, err, "a failed history call must not throw away the forecast")
			CheckSeries(t, s, fx.Signal)
			for _, p := range s.Points {
				require.NotEqual(t, forecast.KindActual, p.Kind, "point at %s: the history did not arrive", p.Start)
			}
			require.True(t, s.Lacks(forecast.PartHistory), "the series says its history is missing")
			require.Len(t, s.Missing, 1)
			g := s.Missing[0]
			require.Equal(t, forecast.PartHistory, g.Part)
			require.True(t, g.From.Equal(fx.From), "missing from %s, asked from %s", g.From, fx.From)
			require.True(t, g.To.After(g.From) && !g.To.After(fx.To), "missing until %s", g.To)
			require.NotEmpty(t, g.Reason)
			require.Error(t, g.Err)
			if hd.resp.status != 200 {
				require.Equal(t, hd.resp.status, g.Status)
				var se *forecast.StatusError
				require.ErrorAs(t, g.Err, &se)
				require.Equal(t, hd.resp.status, se.Code)
			} else {
				require.Zero(t, g.Status)
				require.ErrorIs(t, g.Err, forecast.ErrBadPayload)
			}
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &server{t: t, fx: fx, routes: tc.routes, broken: tc.broken}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			p := newProvider(ts.URL)
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			s, err := p.Fetch(ctx, fx.Zone, fx.From, fx.To)
			if err == nil && !tc.ok {
				t.Fatalf("fetch succeeded with %d points; want an error", len(s.Points))
			}
			tc.check(t, s, err)
		})
	}
}

func always(r response) func(*http.Request) (response, bool) {
	return func(*http.Request) (response, bool) { return r, true }
}

// failsAsData requires an error that says the payload was empty or unusable.
func failsAsData(t *testing.T, _ forecast.Series, err error) {
	t.Helper()
	require.Error(t, err)
	require.True(t, errors.Is(err, forecast.ErrNoData) || errors.Is(err, forecast.ErrBadPayload), "error %v is neither ErrNoData nor ErrBadPayload", err)
}

// CheckSeries requires the invariants every provider's series keeps: valid
// (sorted, non-overlapping, finite, ≥ 0), the given signal, a source, at
// least one point, known kinds, and not all zeros.
func CheckSeries(t *testing.T, s forecast.Series, signal forecast.Signal) {
	t.Helper()
	require.NoError(t, s.Validate())
	require.Equal(t, signal, s.Signal, "signal")
	require.NotEmpty(t, s.Source, "source")
	require.NotEmpty(t, s.Points, "points")
	nonzero := false
	for _, p := range s.Points {
		require.False(t, math.IsNaN(p.GCO2PerKWh))
		require.Contains(t, []forecast.PointKind{forecast.KindActual, forecast.KindForecast, forecast.KindEstimate}, p.Kind)
		require.Equal(t, time.UTC, p.Start.Location(), "point times are UTC")
		if p.GCO2PerKWh != 0 {
			nonzero = true
		}
	}
	require.True(t, nonzero, "every value is zero")
}
