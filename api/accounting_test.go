package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// TestExplainBaselineIsTheStoredOne is the case: for a job with
// --regions ca-central,us-west on a server that lists us-west first,
// explain's run-now row is the stored plan's baseline (the job's home
// region), not the server's first region.
func TestExplainBaselineIsTheStoredOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Unique("apx")
	t.Cleanup(func() {
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	now := testNow
	clock := func() time.Time { return now }
	regions := []greenq.Region{{Name: "us-west", Zone: "US", PUE: 1.1, GPUPriceUSDPerHour: 1},
		{Name: "ca-central", Zone: "CA", PUE: 1.2, GPUPriceUSDPerHour: 1.2}}
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Regions: regions, Now: clock})
	require.NoError(t, err)
	series := func(region string, v func(h int) float64) forecast.Series {
		s := forecast.Series{Region: region, Source: "test", Signal: forecast.SignalAverage, IssuedAt: now}
		for h := -1; h < 48; h++ {
			at := now.Add(time.Duration(h) * time.Hour)
			s.Points = append(s.Points, forecast.Point{Start: at, End: at.Add(time.Hour), GCO2PerKWh: v(h), Kind: forecast.KindForecast})
		}
		return s
	}
	require.NoError(t, store.PutSeries(ctx, series("us-west", func(int) float64 { return 300 })))
	require.NoError(t, store.PutSeries(ctx, series("ca-central", func(h int) float64 {
		if h == 3 {
			return 40
		}
		return 100
	})))
	p, err := queue.NewPlanner(store, queue.PlannerConfig{Now: clock})
	require.NoError(t, err)
	srv, err := New(Config{Tokens: testTokens(), RatePerSecond: -1, Now: clock, Logger: testLogger(t)}, store)
	require.NoError(t, err)
	b := &bundle{srv: srv}

	for _, tc := range []struct {
		name, home string
		regions    []string
	}{
		{"home defaults to the first of regions", "", []string{"ca-central", "us-west"}},
		{"home named", "us-west", []string{"ca-central", "us-west"}},
	} {
		jobs, err := store.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h",
			DurationEstimateS: 3600, Regions: tc.regions, HomeRegion: tc.home})
		require.NoError(t, err, tc.name)
		_, err = p.PlanOnce(ctx)
		require.NoError(t, err)
		j, err := store.Get(ctx, "", jobs[0].ID)
		require.NoError(t, err)
		require.Equal(t, greenq.StatePlanned, j.State)
		want := tc.home
		if want == "" {
			want = tc.regions[0]
		}
		require.Equal(t, want, j.Plan.Baseline.Region, tc.name)

		var x Explanation
		res := b.do(t, "GET", "/v1/plan?explain="+j.ID, aliceToken, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		res.json(t, &x)
		require.Equal(t, j.Plan.Region, x.Chosen.Region)
		require.True(t, j.Plan.Start.Equal(x.Chosen.Start))
		var base *Option
		for i, o := range x.Alternatives {
			if strings.HasPrefix(o.Rejected, "run-now baseline") {
				require.Nil(t, base, "one baseline row: %+v", x.Alternatives)
				base = &x.Alternatives[i]
			}
		}
		require.NotNil(t, base, "%+v", x.Alternatives)
		require.Equal(t, j.Plan.Baseline.Region, base.Region, tc.name)
		require.Equal(t, j.Plan.Baseline.ExpectedGCO2, base.ExpectedGCO2, tc.name)
		require.True(t, j.Plan.Baseline.Start.Equal(base.Start))
		require.InDelta(t, x.Job.SavedGCO2, x.Job.SavedByWaitingGCO2+x.Job.SavedByMovingGCO2, 1e-9)
	}
}

// TestReportTotalsAndCodeCarbon: the csv job rows carry no TOTAL row; the
// totals come with totals=true; codecarbon is CodeCarbon's emissions.csv.
func TestReportTotalsAndCodeCarbon(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.store.seedDashboard("alice")
	res := b.do(t, "GET", "/v1/report?format=csv", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.NotContains(t, string(res.Body), "TOTAL")
	res = b.do(t, "GET", "/v1/report?format=csv&totals=true", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.True(t, strings.HasPrefix(string(res.Body), "signal,jobs,receipts,"), "%s", res.Body)
	res = b.do(t, "GET", "/v1/report?format=codecarbon", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.True(t, strings.HasPrefix(string(res.Body), "timestamp,project_name,run_id,experiment_id,duration,emissions,"), "%s", res.Body)
	require.Contains(t, res.Header.Get("Content-Type"), "text/csv")
	res = b.do(t, "GET", "/v1/report?format=json&totals=true", aliceToken, nil)
	require.Equal(t, http.StatusBadRequest, res.Status)
	_, field, _ := res.err(t)
	require.Equal(t, "totals", field)
}

// TestBatchRefusesAPriceCapNoRegionMeets: all or none, naming the job.
func TestBatchRefusesAPriceCapNoRegionMeets(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(`{"jobs":[{"command":["a"],"deadline":"1h"},{"command":["b"],"deadline":"1h","max_price_usd_per_gpu_hour":0.5}]}`))
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	_, field, msg := res.err(t)
	require.Equal(t, "jobs[1].max_price_usd_per_gpu_hour", field)
	require.Contains(t, msg, "could never run")
	require.Zero(t, b.store.submits, "nothing stored")
}
