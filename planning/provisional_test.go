package planning_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/refresh"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
)

// countingSeries is a SeriesReader over a map that counts its reads.
type countingSeries struct {
	mu     sync.Mutex
	series map[string]forecast.Series
	reads  int
}

func (c *countingSeries) Series(_ context.Context, region string) (forecast.Series, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	s, ok := c.series[region]
	if !ok {
		return forecast.Series{}, fmt.Errorf("series of %q: %w", region, greenq.ErrNotFound)
	}
	return s, nil
}

// TestProvisionalPlansFromCachedSeries: a provisional plan lands in the
// cleanest region's dip, is marked provisional, reads each region's series
// once per TTL, and re-reads a region after Forget.
func TestProvisionalPlansFromCachedSeries(t *testing.T) {
	t.Parallel()
	src := &countingSeries{series: map[string]forecast.Series{"a": series("a", "watttime", 5), "b": series("b", "watttime")}}
	regions := []greenq.Region{{Name: "a", PUE: 1, GPUPriceUSDPerHour: 1}, {Name: "b", PUE: 1, GPUPriceUSDPerHour: 1}}
	pv := planning.New(policy.Config{}).Provisional(regions, src, slog.New(slog.DiscardHandler))
	ctx := context.Background()

	j := job("j1")
	pv.Plan(ctx, t0, []*greenq.Job{j})
	require.NotNil(t, j.Plan)
	require.True(t, j.Plan.Provisional)
	require.Equal(t, "a", j.Plan.Region)
	require.Equal(t, t0.Add(5*time.Hour), j.Plan.Start)
	require.Empty(t, j.Plan.Signal, "a provider's own series is no fallback")
	require.Equal(t, 2, src.reads)

	pv.Plan(ctx, t0.Add(time.Second), []*greenq.Job{job("j2")})
	require.Equal(t, 2, src.reads, "series read again within the cache's TTL")
	pv.Forget("a")
	pv.Plan(ctx, t0.Add(2*time.Second), []*greenq.Job{job("j3")})
	require.Equal(t, 3, src.reads, "only the forgotten region is read again")
}

// TestProvisionalWithoutRegions leaves jobs unplanned and reads nothing.
func TestProvisionalWithoutRegions(t *testing.T) {
	t.Parallel()
	src := &countingSeries{}
	pv := planning.New(policy.Config{}).Provisional(nil, src, slog.New(slog.DiscardHandler))
	j := job("j1")
	pv.Plan(context.Background(), t0, []*greenq.Job{j})
	require.Nil(t, j.Plan)
	require.Zero(t, src.reads)
}

// TestReadRegionNamesFallback: ReadRegion names the fallback a series is,
// and a region without a series has none and the "none" signal.
func TestReadRegionNamesFallback(t *testing.T) {
	t.Parallel()
	lastGood := "watttime" + refresh.SuffixLastGood
	src := &countingSeries{series: map[string]forecast.Series{
		"own": series("own", "watttime"), "stale": series("stale", lastGood), "model": series("model", refresh.SourceForecaster),
	}}
	for _, c := range []struct {
		region, fallback string
		has              bool
	}{
		{"own", "", true}, {"stale", lastGood, true}, {"model", refresh.SourceForecaster, true}, {"gone", refresh.SourceNone, false},
	} {
		t.Run(c.region, func(t *testing.T) {
			r, err := planning.ReadRegion(context.Background(), src, greenq.Region{Name: c.region})
			require.NoError(t, err)
			require.Equal(t, c.fallback, r.Fallback)
			require.Equal(t, c.has, r.HasSeries)
			require.Equal(t, c.region, r.Config.Name)
		})
	}
}
