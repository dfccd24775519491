package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func body(s string) *strings.Reader { return strings.NewReader(s) }

const okJob = `{"name":"train-1","command":["python","train.py"],"deadline":"24h","duration_estimate_s":3600}`

func TestSubmitGetCancelLogs(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(okJob))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var j greenq.Job
	res.json(t, &j)
	require.Equal(t, "alice", j.Tenant)
	require.Equal(t, "/v1/jobs/"+j.ID, res.Header.Get("Location"))
	require.Equal(t, testNow.Add(24*time.Hour), j.Deadline)

	res = b.do(t, "GET", "/v1/jobs/"+j.ID, aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)

	res = b.do(t, "GET", "/v1/jobs/"+j.ID+"/logs", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))

	res = b.do(t, "POST", "/v1/jobs/"+j.ID+"/cancel", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	res.json(t, &j)
	require.Equal(t, greenq.StateCancelled, j.State)

	res = b.do(t, "POST", "/v1/jobs/"+j.ID+"/cancel", aliceToken, nil)
	require.Equal(t, http.StatusConflict, res.Status)
	code, _, _ := res.err(t)
	require.Equal(t, "conflict", code)
}

func TestSubmitSweepAndBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(`{"command":["python","sweep.py"],"deadline":"24h","trials":3}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var list JobList
	res.json(t, &list)
	require.Len(t, list.Jobs, 3)
	require.Equal(t, greenq.KindSweep, list.Jobs[0].Kind)

	res = b.do(t, "POST", "/v1/jobs", aliceToken, body(`{"jobs":[{"command":["a"],"deadline":"2h"},{"command":["b"],"deadline":"3h","trials":2}]}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res.json(t, &list)
	require.Len(t, list.Jobs, 3)
	require.Equal(t, 6, b.store.stored())
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for _, tc := range []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer nope"},
		{"wrong scheme", "Basic " + aliceToken},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/v1/jobs", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			res := b.serve(t, req)
			require.Equal(t, http.StatusUnauthorized, res.Status)
			require.Contains(t, res.Header.Get("WWW-Authenticate"), "Bearer")
			code, _, _ := res.err(t)
			require.Equal(t, "unauthenticated", code)
		})
	}
	// Public endpoints need no token.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/metrics", "/"} {
		res := b.do(t, "GET", path, "", nil)
		require.Equal(t, http.StatusOK, res.Status, path)
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(okJob))
	require.Equal(t, http.StatusCreated, res.Status)
	var j greenq.Job
	res.json(t, &j)
	res = b.do(t, "POST", "/v1/jobs", bobToken, body(okJob))
	require.Equal(t, http.StatusCreated, res.Status)

	for _, path := range []string{"/v1/jobs/" + j.ID, "/v1/jobs/" + j.ID + "/logs", "/v1/plan?explain=" + j.ID} {
		res = b.do(t, "GET", path, bobToken, nil)
		require.Equal(t, http.StatusNotFound, res.Status, path)
		require.NotContains(t, string(res.Body), "alice")
	}
	res = b.do(t, "POST", "/v1/jobs/"+j.ID+"/cancel", bobToken, nil)
	require.Equal(t, http.StatusNotFound, res.Status)

	var list JobList
	b.do(t, "GET", "/v1/jobs", bobToken, nil).json(t, &list)
	require.Len(t, list.Jobs, 1)
	require.Equal(t, "bob", list.Jobs[0].Tenant)
	var plan PlanResponse
	b.do(t, "GET", "/v1/plan", bobToken, nil).json(t, &plan)
	require.Len(t, plan.Jobs, 1)
	require.NotContains(t, string(b.do(t, "GET", "/v1/plan", bobToken, nil).Body), j.ID)
	res = b.do(t, "GET", "/v1/jobs?tenant=alice", bobToken, nil)
	require.Equal(t, http.StatusBadRequest, res.Status)

	// The admin sees everyone and may filter by tenant.
	b.do(t, "GET", "/v1/jobs", adminToken, nil).json(t, &list)
	require.Len(t, list.Jobs, 2)
	b.do(t, "GET", "/v1/jobs?tenant=alice", adminToken, nil).json(t, &list)
	require.Len(t, list.Jobs, 1)
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/jobs/"+j.ID, adminToken, nil).Status)
}

func TestOpenModeServesLoopbackOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Tokens: []Token{}})
	require.True(t, b.srv.Open())
	res := b.do(t, "POST", "/v1/jobs", "", body(okJob))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var j greenq.Job
	res.json(t, &j)
	require.Equal(t, LocalTenant, j.Tenant)

	for _, path := range []string{"/v1/jobs", "/", "/openapi.json"} {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "203.0.113.9:5000"
		res = b.serve(t, req)
		require.Equal(t, http.StatusUnauthorized, res.Status, path)
		_, _, msg := res.err(t)
		require.Contains(t, msg, "loopback")
	}
	for addr, host := range map[string]string{"[::1]:4000": "[::1]:8080", "127.0.0.2:1": "localhost:8080", "127.0.0.1:2": "127.0.0.1"} {
		req := httptest.NewRequest("GET", "/v1/jobs", nil)
		req.RemoteAddr, req.Host = addr, host
		require.Equal(t, http.StatusOK, b.serve(t, req).Status, addr)
	}
	// A name that resolves to loopback only through DNS (rebinding) is
	// not this server's: refused, naming Host.
	for _, host := range []string{"evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example"} {
		req := httptest.NewRequest("GET", "/v1/jobs", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:40000", host
		res := b.serve(t, req)
		require.Equal(t, http.StatusForbidden, res.Status, host)
		code, field, _ := res.err(t)
		require.Equal(t, "forbidden", code)
		require.Equal(t, "Host", field)
	}
	s, err := New(Config{Tokens: testTokens()}, b.store)
	require.NoError(t, err)
	require.False(t, s.Open())
}

func TestListFiltersAndPaging(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for i := range 5 {
		res := b.do(t, "POST", "/v1/jobs", aliceToken, body(fmt.Sprintf(`{"name":"n%d","command":["x"],"deadline":"24h","tags":{"team":"t%d"}}`, i, i%2)))
		require.Equal(t, http.StatusCreated, res.Status)
	}
	var list JobList
	b.do(t, "GET", "/v1/jobs?limit=2", aliceToken, nil).json(t, &list)
	require.Len(t, list.Jobs, 2)
	seen := len(list.Jobs)
	for list.NextCursor != "" {
		cur := list.NextCursor
		list = JobList{}
		b.do(t, "GET", "/v1/jobs?limit=2&cursor="+cur, aliceToken, nil).json(t, &list)
		seen += len(list.Jobs)
	}
	require.Equal(t, 5, seen)
	b.do(t, "GET", "/v1/jobs?tag=team=t0&state=pending", aliceToken, nil).json(t, &list)
	require.Len(t, list.Jobs, 3)
	b.do(t, "GET", "/v1/jobs?state=running", aliceToken, nil).json(t, &list)
	require.Empty(t, list.Jobs)
	require.NotNil(t, list.Jobs)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	big := `{"command":["x"],"deadline":"24h","name":"` + strings.Repeat("a", 4<<20) + `"}`
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(big))
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status)
	code, field, _ := res.err(t)
	require.Equal(t, "too_large", code)
	require.Equal(t, "body", field)

	// Without a Content-Length the limit holds while reading.
	req := httptest.NewRequest("POST", "/v1/jobs", struct{ *strings.Reader }{body(big)})
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Content-Type", "application/json")
	res = b.serve(t, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status)
	require.Zero(t, b.store.submits)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RatePerSecond: 0.5, Burst: 2})
	for range 2 {
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/regions", aliceToken, nil).Status)
	}
	res := b.do(t, "GET", "/v1/regions", aliceToken, nil)
	require.Equal(t, http.StatusTooManyRequests, res.Status)
	require.Equal(t, "2", res.Header.Get("Retry-After"))
	code, _, _ := res.err(t)
	require.Equal(t, "rate_limited", code)
	// Another token has its own budget.
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/regions", bobToken, nil).Status)
}

func TestPlanAndExplain(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.store.seedDashboard("alice")
	var plan PlanResponse
	res := b.do(t, "GET", "/v1/plan", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	res.json(t, &plan)
	require.Len(t, plan.Jobs, 3)
	require.Equal(t, "d-1", plan.Jobs[0].ID) // earliest start first; unplanned last
	require.Equal(t, "d-3", plan.Jobs[2].ID)
	require.Equal(t, 2, plan.Totals.Deferred)
	require.InDelta(t, 150, plan.Totals.SavedGCO2, 1e-9)

	res = b.do(t, "POST", "/v1/jobs", aliceToken, body(`{"name":"fresh","command":["x"],"deadline":"30h","duration_estimate_s":7200}`))
	var j greenq.Job
	res.json(t, &j)
	var x Explanation
	res = b.do(t, "GET", "/v1/plan?explain="+j.ID, aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	res.json(t, &x)
	require.NotNil(t, x.Chosen)
	require.NotEmpty(t, x.Why)
	// Every other region and the run-now baseline are weighed (the
	// planner may add runner-up windows of its own).
	regions := map[string]bool{}
	baseline := false
	seen := map[string]bool{}
	for _, o := range x.Alternatives {
		key := o.Region + " " + o.Start.UTC().Format(time.RFC3339)
		require.False(t, seen[key], "option %s listed twice: %+v", key, x.Alternatives)
		seen[key] = true
		require.NotEmpty(t, o.Rejected)
		require.LessOrEqual(t, x.Chosen.ExpectedGCO2, o.ExpectedGCO2)
		regions[o.Region] = true
		baseline = baseline || strings.HasPrefix(o.Rejected, "run-now baseline")
	}
	for _, r := range []string{"uk", "eu-central", "us-west"} {
		require.True(t, r == x.Chosen.Region || regions[r], "region %s not weighed: %+v", r, x.Alternatives)
	}
	require.True(t, baseline, "%+v", x.Alternatives)

	res = b.do(t, "GET", "/v1/plan?explain=d-1", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	res.json(t, &x)
	require.Equal(t, "uk", x.Chosen.Region)
	require.Equal(t, "defer 6h to uk", x.Why)
}

func TestForecastsAndRegions(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	var s struct {
		Region, Signal string
		Points         []struct {
			Start time.Time
			Kind  string
		}
	}
	b.do(t, "GET", "/v1/forecasts/uk", aliceToken, nil).json(t, &s)
	require.Equal(t, "uk", s.Region)
	require.Len(t, s.Points, 72)
	b.do(t, "GET", "/v1/forecasts/uk?hours=6", aliceToken, nil).json(t, &s)
	require.Len(t, s.Points, 6)
	require.Equal(t, testNow, s.Points[0].Start)
	require.Equal(t, "forecast", s.Points[0].Kind)
	b.do(t, "GET", "/v1/forecasts/uk?hours=6&past=2", aliceToken, nil).json(t, &s)
	require.Len(t, s.Points, 8)
	require.Equal(t, "actual", s.Points[0].Kind)
	require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/forecasts/mars", aliceToken, nil).Status)

	var rl RegionList
	b.do(t, "GET", "/v1/regions", aliceToken, nil).json(t, &rl)
	require.Len(t, rl.Regions, 3)
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{ForecastMaxAge: 2 * time.Hour})
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/readyz", "", nil).Status)

	stale := setup(t, Config{ForecastMaxAge: 30 * time.Minute})
	res := stale.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	require.Contains(t, string(res.Body), "stale")

	down := setup(t, Config{})
	down.store.pingErr = fmt.Errorf("dial tcp: connection refused")
	res = down.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	require.Contains(t, string(res.Body), "redis")
	require.Equal(t, http.StatusOK, down.do(t, "GET", "/healthz", "", nil).Status)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.do(t, "GET", "/v1/regions", aliceToken, nil)
	b.do(t, "GET", "/v1/regions", "", nil)
	res := b.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	text := string(res.Body)
	require.Contains(t, text, `greenq_api_requests_total{code="200",route="GET /v1/regions"} 1`)
	require.Contains(t, text, `greenq_api_requests_total{code="401",route="GET /v1/regions"} 1`)
	require.Contains(t, text, `greenq_api_request_duration_seconds_bucket`)
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "GET", "/v1/nope", aliceToken, nil)
	require.Equal(t, http.StatusNotFound, res.Status)
	code, _, _ := res.err(t)
	require.Equal(t, "not_found", code)
	res = b.do(t, "DELETE", "/v1/jobs/x", aliceToken, nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.Status)
	require.Equal(t, "GET", res.Header.Get("Allow"))
}

func TestTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RequestTimeout: time.Nanosecond})
	b.store.blockUntilDone = true
	res := b.do(t, "GET", "/v1/jobs", aliceToken, nil)
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	code, _, _ := res.err(t)
	require.Equal(t, "unavailable", code)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		tok   Token
		field string
	}{
		{"no tenant", Token{SHA256: HashToken("x")}, "tokens[0].tenant"},
		{"bad hash", Token{Tenant: "a", SHA256: "abc"}, "tokens[0].sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{Tokens: []Token{tc.tok}}, newFakeStore(t, testNow))
			require.Error(t, err)
			e, ok := asError(err)
			require.True(t, ok)
			require.Equal(t, tc.field, e.Field)
		})
	}
	_, err := New(Config{}, nil)
	require.Error(t, err)
}

func TestReport(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.store.seedDashboard("alice")
	b.store.put(&greenq.Job{ID: "bob-1", Name: "bob-secret-run", Tenant: "bob", State: greenq.StateSucceeded,
		SubmittedAt: testNow, Deadline: testNow.Add(time.Hour), Receipt: &greenq.Receipt{GCO2: 5, EnergyKWh: 0.1}})
	for _, format := range []string{"json", "csv", "markdown", "html", "statement", "table"} {
		res := b.do(t, "GET", "/v1/report?format="+format, aliceToken, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s: %s", format, res.Body)
		require.NotContains(t, string(res.Body), "bob-secret-run", format)
	}
	res := b.do(t, "GET", "/report", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, res.Header.Get("Content-Type"), "text/html")
	for path, field := range map[string]string{
		"/v1/report?format=pdf":     "format",
		"/v1/report?tenant=bob":     "tenant",
		"/v1/report?from=yesterday": "from",
		"/v1/report?tag=broken":     "tag",
		"/v1/report?idle_below=500": "idle_below",
		"/v1/report?colour=red":     "colour",
	} {
		res := b.do(t, "GET", path, aliceToken, nil)
		require.Equal(t, http.StatusBadRequest, res.Status, path)
		_, f, _ := res.err(t)
		require.Equal(t, field, f, path)
	}
	res = b.do(t, "GET", "/v1/report?format=csv", adminToken, nil)
	require.Contains(t, string(res.Body), "bob-1")
}
