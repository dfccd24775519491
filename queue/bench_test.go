package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func BenchmarkSubmit(b *testing.B) {
	rdb := redistest.Client(b)
	prefix := redistest.Unique("qb")
	b.Cleanup(func() { cleanKeys(rdb, prefix) })
	regions := []greenq.Region{{Name: "r1", PUE: 1.1}, {Name: "r2", PUE: 1.2}, {Name: "r3", PUE: 1.3}}
	s, err := NewStore(rdb, Config{Prefix: prefix, Regions: regions})
	require.NoError(b, err)
	ctx := context.Background()
	// A week of hourly signal per region, as the forecast refresh leaves it.
	now := time.Now().Truncate(time.Hour)
	for i, r := range regions {
		series := forecast.Series{Region: r.Name, Zone: "Z", Source: "bench", Signal: forecast.SignalAverage, IssuedAt: now}
		for h := -24; h < 7*24; h++ {
			start := now.Add(time.Duration(h) * time.Hour)
			series.Points = append(series.Points, forecast.Point{Start: start, End: start.Add(time.Hour),
				GCO2PerKWh: 100 + float64((h*(i+3))%97), Kind: forecast.KindForecast})
		}
		require.NoError(b, s.PutSeries(ctx, series))
	}
	req := greenq.SubmitRequest{Command: []string{"python", "train.py"}, Deadline: "24h", DurationEstimateS: 3600}
	b.ReportAllocs()
	b.SetParallelism(4) // 8 clients on 2 cores, as in make bench
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Submit(ctx, "bench", req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTableRelease measures release latency on the real clock: jobs
// planned to start spread over a few seconds, the release loop running,
// lag = enqueue time − planned start. It measures one burst and ignores
// b.N (run it with -benchtime 1x, as make bench does); it writes a markdown
// table to $GREENQ_BENCH_OUT/release.md and stdout.
func BenchmarkTableRelease(b *testing.B) {
	const (
		jobs   = 300
		spread = 3 * time.Second
	)
	bs := setup(b, func(c *Config) { c.Now = time.Now; c.Logger = nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := asynq.NewInspector(redistest.AsynqOpt(b))
	defer func() { _ = in.DeleteQueue(RegionQueue(bs.regions[0]), true); _ = in.Close() }()

	var (
		mu   sync.Mutex
		lags []time.Duration
		done = make(chan struct{})
	)
	r, err := NewReleaser(bs.s, ReleaserConfig{RedisConnOpt: redistest.AsynqOpt(b), OnRelease: func(_ *greenq.Job, lag time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		lags = append(lags, lag)
		if len(lags) == jobs {
			close(done)
		}
	}})
	require.NoError(b, err)
	defer r.Close()

	base := time.Now().Add(time.Second)
	plans := map[string]greenq.Plan{}
	for i := range jobs {
		j := bs.submit(b, "bench")
		start := base.Add(time.Duration(i) * spread / jobs)
		plans[j.ID] = greenq.Plan{Region: bs.regions[0], Start: start, End: start.Add(time.Hour)}
	}
	n, err := bs.s.SetPlans(ctx, plans)
	require.NoError(b, err)
	require.Equal(b, jobs, n)
	require.True(b, time.Now().Before(base), "setup took longer than the lead time")
	go func() { _ = r.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(spread + 30*time.Second):
		b.Fatalf("released %d of %d", len(lags), jobs)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	var out strings.Builder
	fmt.Fprintf(&out, "## Release latency (planned start → task on the region queue)\n\n")
	fmt.Fprintf(&out, "%d jobs, starts spread over %s, one release loop, real Redis, real clock.\n\n", jobs, spread)
	fmt.Fprintf(&out, "| min | p50 | p90 | p99 | max | released early |\n|---|---|---|---|---|---|\n")
	early := 0
	for _, l := range lags {
		if l < 0 {
			early++
		}
	}
	fmt.Fprintf(&out, "| %s | %s | %s | %s | %s | %d |\n", lags[0].Round(time.Microsecond), q(.5).Round(time.Microsecond),
		q(.9).Round(time.Microsecond), q(.99).Round(time.Microsecond), lags[len(lags)-1].Round(time.Microsecond), early)
	fmt.Print(out.String())
	if dir := os.Getenv("GREENQ_BENCH_OUT"); dir != "" {
		require.NoError(b, os.MkdirAll(dir, 0o755))
		require.NoError(b, os.WriteFile(filepath.Join(dir, "release.md"), []byte(out.String()), 0o644))
	}
	require.Zero(b, early, "never released before the planned start")
	tasks, err := in.ListPendingTasks(RegionQueue(bs.regions[0]), asynq.PageSize(jobs+10))
	require.NoError(b, err)
	require.Len(b, tasks, jobs)
}
