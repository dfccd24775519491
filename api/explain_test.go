package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/policy"
	"github.com/greenq/greenq/queue"
)

// TestExplainChosenIsTheStoredPlan is issue 19's done-when case: on a
// capacity-bounded, carbon-priced, time-of-use-priced setup over real
// Redis, explain's chosen option is every job's stored plan (region, start,
// gCO2e, cost) and its baseline row the stored baseline; and no option it
// lists beats the chosen one on the planner's own objective unless its
// verdict says why (capacity, hysteresis), since every option is one the
// planner weighed, not a re-plan of its own.
func TestExplainChosenIsTheStoredPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Unique("apc")
	t.Cleanup(func() {
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	now := testNow
	clock := func() time.Time { return now }
	var regions []greenq.Region
	for i, r := range fixtureRegions {
		regions = append(regions, greenq.Region{Name: r.name, Zone: r.zone, PUE: 1.1 + float64(i)/20, GPUPriceUSDPerHour: 2 + float64(i)/2,
			// Dearer evenings, cheaper nights (UTC), shifted per region.
			PriceSchedule: []greenq.PriceStep{{FromHour: 16 + i, ToHour: 20 + i, USDPerGPUHour: 4}, {FromHour: 1, ToHour: 5, USDPerGPUHour: 1}}})
	}
	const carbonPrice = 200
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Regions: regions, Now: clock,
		Policy: policy.Config{Slot: 15 * time.Minute, CarbonPriceUSDPerTonne: carbonPrice}})
	require.NoError(t, err)
	for _, r := range fixtureRegions {
		require.NoError(t, store.PutSeries(ctx, loadSeries(t, r.name, r.zone, r.file, now)))
		// Two GPUs per region: the jobs below need more at their best hours.
		require.NoError(t, store.Heartbeat(ctx, queue.WorkerInfo{ID: "w-" + r.name, Region: r.name, GPUs: 2}, time.Hour))
	}
	reqs := []greenq.SubmitRequest{
		{DurationEstimateS: 3 * 3600, Deadline: "30h", GPUs: 2},
		{DurationEstimateS: 3 * 3600, Deadline: "30h", GPUs: 2},
		{DurationEstimateS: 2 * 3600, Deadline: "24h", GPUs: 1, HomeRegion: "eu-central"},
		{DurationEstimateS: 2 * 3600, Deadline: "24h", GPUs: 2, Regions: []string{"uk", "us-west"}},
		{DurationEstimateS: 4 * 3600, Deadline: "36h", GPUs: 1, Interruptible: true},
		{DurationEstimateS: 3600, Deadline: "8h", GPUs: 2},
		{DurationEstimateS: 3600, Deadline: "20h", GPUs: 1, MaxPriceUSDPerGPUHour: 1.5},
		{DurationEstimateS: 3600, Deadline: "8h", GPUs: 1, MaxPriceUSDPerGPUHour: 1}, // held: night prices only, after its deadline
		{DurationEstimateS: 3 * 3600, Deadline: "3h", GPUs: 1},                       // cannot finish: urgent
	}
	var ids []string
	for i, req := range reqs {
		req.Name, req.Command = fmt.Sprintf("job-%d", i), []string{"true"}
		jobs, err := store.Submit(ctx, "alice", req)
		require.NoError(t, err)
		ids = append(ids, jobs[0].ID)
	}
	p, err := queue.NewPlanner(store, queue.PlannerConfig{Now: clock})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	srv, err := New(Config{Tokens: testTokens(), RatePerSecond: -1, Now: clock, Logger: testLogger(t)}, store)
	require.NoError(t, err)
	b := &bundle{srv: srv}

	objective := func(gco2, cost float64) float64 { return cost + carbonPrice*gco2/1e6 }
	held := 0
	for i, id := range ids {
		j, err := store.Get(ctx, "", id)
		require.NoError(t, err)
		pl := j.Plan
		require.NotNil(t, pl, "job %d", i)
		require.False(t, pl.Provisional, "job %d: the leader's plan", i)
		var x Explanation
		res := b.do(t, "GET", "/v1/plan?explain="+id, aliceToken, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		res.json(t, &x)
		require.Equal(t, pl.Reason, x.Why, "job %d", i)
		if pl.Held {
			held++
			require.Nil(t, x.Chosen, "job %d is held", i)
		} else {
			require.NotNil(t, x.Chosen, "job %d", i)
			c := x.Chosen
			require.Equal(t, pl.Region, c.Region, "job %d", i)
			require.True(t, pl.Start.Equal(c.Start), "job %d: %s vs %s", i, pl.Start, c.Start)
			require.True(t, pl.End.Equal(c.End), "job %d", i)
			require.Equal(t, pl.ExpectedGCO2, c.ExpectedGCO2, "job %d", i)
			require.Equal(t, pl.ExpectedCostUSD, c.ExpectedCostUSD, "job %d", i)
		}
		var base *Option
		for k, o := range x.Alternatives {
			if strings.HasPrefix(o.Rejected, "run-now baseline") {
				require.Nil(t, base, "job %d: one baseline row: %+v", i, x.Alternatives)
				base = &x.Alternatives[k]
				continue
			}
			require.NotEmpty(t, o.Rejected, "job %d", i)
			if o.Start.IsZero() || x.Chosen == nil || strings.Contains(o.Rejected, "capacity") || strings.Contains(o.Rejected, "hysteresis") {
				continue
			}
			require.GreaterOrEqual(t, objective(o.ExpectedGCO2, o.ExpectedCostUSD)+1e-9,
				objective(x.Chosen.ExpectedGCO2, x.Chosen.ExpectedCostUSD), "job %d: %+v beats the chosen %+v", i, o, *x.Chosen)
		}
		require.NotNil(t, base, "job %d: %+v", i, x.Alternatives)
		require.Equal(t, pl.Baseline.Region, base.Region, "job %d", i)
		require.True(t, pl.Baseline.Start.Equal(base.Start), "job %d", i)
		require.Equal(t, j.Duration(), base.End.Sub(base.Start), "job %d: the baseline runs the whole job", i)
		require.Equal(t, pl.Baseline.ExpectedGCO2, base.ExpectedGCO2, "job %d", i)
		require.Equal(t, pl.Baseline.ExpectedCostUSD, base.ExpectedCostUSD, "job %d", i)
	}
	require.Equal(t, 1, held, "the job capped under every price is held")
	// Capacity bound: the two identical 2-GPU jobs would share a window
	// without it, and cannot share a 2-GPU region.
	a, c := mustPlan(t, store, ids[0]), mustPlan(t, store, ids[1])
	require.False(t, a.Region == c.Region && a.Start.Before(c.End) && c.Start.Before(a.End), "%+v and %+v overlap on 2 GPUs", a, c)
}

func mustPlan(t *testing.T, store *queue.Store, id string) *greenq.Plan {
	t.Helper()
	j, err := store.Get(context.Background(), "", id)
	require.NoError(t, err)
	require.NotNil(t, j.Plan)
	return j.Plan
}
