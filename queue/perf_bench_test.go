package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/stretchr/testify/require"
)

// fillJobs submits n jobs (8 at a time) and returns their ids.
func fillJobs(tb testing.TB, s *Store, n int) []string {
	tb.Helper()
	ctx := context.Background()
	out := make([]string, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				jobs, err := s.Submit(ctx, "bench", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "20h",
					DurationEstimateS: int64(600 + 60*(i%30))})
				if err != nil {
					tb.Error(err)
					return
				}
				out[i] = jobs[0].ID
			}
		})
	}
	wg.Wait()
	return out
}

// benchSeries stores a week of hourly signal per region.
func benchSeries(tb testing.TB, b *bundle) {
	tb.Helper()
	now := b.clk.Now().Truncate(time.Hour)
	for i, r := range b.regions {
		series := forecast.Series{Region: r, Zone: "Z", Source: "bench", Signal: forecast.SignalAverage, IssuedAt: now}
		for h := -24; h < 7*24; h++ {
			start := now.Add(time.Duration(h) * time.Hour)
			series.Points = append(series.Points, forecast.Point{Start: start, End: start.Add(time.Hour),
				GCO2PerKWh: 100 + float64((h*(i+3))%97), Kind: forecast.KindForecast})
		}
		require.NoError(tb, b.s.PutSeries(context.Background(), series))
	}
}

// BenchmarkPlanRound measures one planner round over 10 000 queued jobs
// whose plans do not change between rounds (the steady state of a server
// re-planning every few seconds), without capacity limits and with 64
// live GPUs per region.
func BenchmarkPlanRound(b *testing.B) {
	for _, gpus := range []int{0, 64} {
		b.Run(fmt.Sprintf("gpus=%d", gpus), func(b *testing.B) {
			bd := setup(b, func(c *Config) { c.Logger = nil })
			benchSeries(b, bd)
			ctx := context.Background()
			if gpus > 0 {
				for i, r := range bd.regions {
					require.NoError(b, bd.s.Heartbeat(ctx, WorkerInfo{ID: fmt.Sprint("w", i), Region: r, GPUs: gpus}, time.Hour))
				}
			}
			fillJobs(b, bd.s, 10000)
			p, err := NewPlanner(bd.s, PlannerConfig{Now: bd.clk.Now})
			require.NoError(b, err)
			_, err = p.PlanOnce(ctx) // the first round plans everything
			require.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.PlanOnce(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReleaseBurst measures releasing 1 000 jobs planned to the same
// slot boundary: one release round from the schedule to the tasks on the
// region queue, per op.
func BenchmarkReleaseBurst(b *testing.B) {
	const n = 1000
	bd := setup(b, func(c *Config) { c.Logger = nil })
	in := inspector(b, bd)
	r := newReleaser(b, bd, func(c *ReleaserConfig) { c.Logger = nil })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		start := bd.clk.Now().Add(time.Minute)
		plans := map[string]greenq.Plan{}
		for _, id := range fillJobs(b, bd.s, n) {
			plans[id] = greenq.Plan{Region: bd.regions[0], Start: start, End: start.Add(time.Hour)}
		}
		got, err := bd.s.SetPlans(ctx, plans)
		require.NoError(b, err)
		require.Equal(b, n, got)
		bd.clk.Set(start)
		b.StartTimer()
		if _, err := r.ReleaseDue(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		left, err := bd.rdb.ZCard(ctx, bd.s.k.release()).Result()
		require.NoError(b, err)
		require.Zero(b, left)
		_ = in.DeleteQueue(RegionQueue(bd.regions[0]), true)
		b.StartTimer()
	}
}
