package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestSubmitHome sends --home as home_region, says at submit which region
// savings count against, and names --home when the server refuses it.
func TestSubmitHome(t *testing.T) {
	t.Parallel()
	stub := newStub()
	stub.on("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req greenq.SubmitRequest
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		if req.HomeRegion == "mars" {
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(apiErr(greenq.CodeInvalidArgument, "home_region", `unknown region "mars"`))
			return
		}
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(greenq.Job{ID: "01home", State: greenq.StatePending, Regions: req.Regions, HomeRegion: req.HomeRegion})
	})
	srv := httptest.NewServer(stub)
	defer srv.Close()
	r := runOut(t, nil, srv, "submit", "--deadline", "1h", "--regions", "ca-central,us-west", "--home", "us-west", "--", "true")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "01home\n", r.stdout)
	require.Equal(t, "home region us-west: savings count against running there at once (--home to change)\n", r.stderr)
	var sent greenq.SubmitRequest
	require.NoError(t, json.Unmarshal(stub.bodies["POST /v1/jobs"], &sent))
	require.Equal(t, "us-west", sent.HomeRegion)

	r = runOut(t, nil, srv, "submit", "--deadline", "1h", "--regions", "ca-central", "--home", "us-west", "--", "true")
	require.Equal(t, 2, r.code, "refused before it is sent: home must be one of --regions")
	require.Contains(t, r.stderr, "--home")

	r = runOut(t, nil, srv, "submit", "--deadline", "1h", "--home", "mars", "--", "true")
	require.Equal(t, 2, r.code)
	require.Equal(t, "greenq: --home: unknown region \"mars\"\n", r.stderr)
}

// TestReportTotalsFlag asks the server for the csv totals.
func TestReportTotalsFlag(t *testing.T) {
	t.Parallel()
	stub := newStub()
	stub.on("GET /v1/report", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("signal,jobs\n")) })
	srv := httptest.NewServer(stub)
	defer srv.Close()
	r := runOut(t, nil, srv, "report", "-o", "csv", "--totals")
	require.Equal(t, 0, r.code, r.stderr)
	r = runOut(t, nil, srv, "report", "--format", "codecarbon")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, []string{"GET /v1/report?format=csv&totals=true", "GET /v1/report?format=codecarbon"}, stub.requests())
}

// TestMaxPriceRefusalNamesTheFlag: the server's max_price_usd_per_gpu_hour
// refusal reaches the user as --max-price, exit 2.
func TestMaxPriceRefusalNamesTheFlag(t *testing.T) {
	t.Parallel()
	stub := newStub()
	stub.json("POST /v1/jobs", 400, apiErr(greenq.CodeInvalidArgument, "max_price_usd_per_gpu_hour",
		"$0.50 per GPU-hour is below the lowest price of every allowed region at any hour (uk-south: $1.28): the job could never run; raise the cap or allow a cheaper region"))
	srv := httptest.NewServer(stub)
	defer srv.Close()
	r := runOut(t, nil, srv, "submit", "--deadline", "1h", "--max-price", "0.5", "--", "true")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "greenq: --max-price: $0.50 per GPU-hour is below the lowest price")
}

// TestExplainRowWithoutWindow: a region with no window (over the price
// cap) shows dashes, not a zero time that reads "now, 0 g, $0.00".
func TestExplainRowWithoutWindow(t *testing.T) {
	t.Parallel()
	stub := newStub()
	stub.json("GET /v1/plan", 200, map[string]any{
		"job": map[string]any{"id": "01cap", "name": "capped", "state": "pending", "gpus": 1, "submitted_at": outNow, "deadline": outNow,
			"expected_gco2": 0, "expected_cost_usd": 0, "expected_kwh": 0, "saved_gco2": 0, "deferred": false},
		"alternatives": []map[string]any{{"region": "uk-south", "expected_gco2": 0, "expected_cost_usd": 0,
			"rejected": "its price, $1.28/GPU-h at the cheapest, is over the job's cap of $0.50"}},
		"why": "held: no window before the deadline is under the price cap of $0.50/GPU-h in any allowed region"})
	srv := httptest.NewServer(stub)
	defer srv.Close()
	r := runOut(t, nil, srv, "plan", "--explain", "01cap")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `uk-south\s+–\s+–\s+–\s+–\s+its price`, r.stdout)
	require.NotContains(t, r.stdout, "01-01")
	require.NotContains(t, r.stdout, "$0.00")
}

// TestStatusShowsTheAccounting: status shows the saving's split, the
// measured cost and a restatement.
func TestStatusShowsTheAccounting(t *testing.T) {
	t.Parallel()
	j := finishedJob()
	at, g := outNow.Add(-time.Hour), 0.12
	j.Receipt.SavedByWaitingGCO2, j.Receipt.SavedByMovingGCO2, j.Receipt.BaselineRegion = 3, 80, "us-west"
	j.Receipt.GPUHours, j.Receipt.CostUSD, j.Receipt.RestatedAt, j.Receipt.GCO2AtFinish = 9.7, 12.4, &at, &g
	stub := newStub()
	stub.json("GET /v1/jobs/01JDONE", 200, j)
	srv := httptest.NewServer(stub)
	defer srv.Close()
	r := runOut(t, nil, srv, "status", "01JDONE")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `split:\s+waiting saved 3 gCO2e, moving 80 gCO2e \(home region us-west\)`, r.stdout)
	require.Regexp(t, `cost:\s+\$12\.40 for 9\.7 GPU-hours run`, r.stdout)
	require.Regexp(t, `restated:\s+from actuals .*\(0\.12 gCO2e at finish\)`, r.stdout)
}
