package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/file"
	"github.com/greenq/greenq/forecast/refresh"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// nopEnqueuer accepts every task and runs none: the tests drive the
// handler themselves.
type nopEnqueuer struct{}

func (nopEnqueuer) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return &asynq.TaskInfo{}, nil
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// writeZone writes <dir>/<zone>.csv: hourly rows of v from two days before
// now to eight days after, so that the file provider's replay serves it
// unshifted (points ending by its now are actual, later ones forecast).
func writeZone(t *testing.T, dir, zone string, now time.Time, v string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("time_utc,gco2_per_kwh\n")
	base := now.UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	for h := range 240 {
		fmt.Fprintf(&b, "%s,%s\n", base.Add(time.Duration(h)*time.Hour).Format(time.RFC3339), v)
	}
	p := filepath.Join(dir, zone+".csv")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	// A rewrite within the same second must still look changed.
	mt := now.Add(time.Duration(len(v)) * time.Minute)
	require.NoError(t, os.Chtimes(p, mt, mt))
}

// TestReceiptFromServerFactsThenRestated runs a job, as a worker started
// the README's way (--region and --gpus, no config of its own), against a
// real store: its receipt has the PUE and price the server configured and
// shared. The run's hour had only a forecast when it finished; once the
// file provider's actuals for that hour arrive, with another value than
// the forecast, the server's restating pass rewrites the receipt from
// them, keeping the figure at finish.
func TestReceiptFromServerFactsThenRestated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix, region := redistest.Unique("rst"), redistest.Unique("rs")
	t.Cleanup(func() {
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	server := []greenq.Region{{Name: region, Zone: "ZZ", Provider: "file", PUE: 1.3, GPUPriceUSDPerHour: 2,
		EmbodiedGCO2PerGPUHour: 20}}
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Regions: server})
	require.NoError(t, err)
	// The worker's store knows no regions: it has no config.
	wstore, err := queue.NewStore(rdb, queue.Config{Prefix: prefix})
	require.NoError(t, err)
	require.NoError(t, store.PublishRegions(ctx))

	clock := &testClock{t: time.Now()}
	dir := t.TempDir()
	writeZone(t, dir, "ZZ", clock.now(), "300")
	fp, err := file.New(file.Config{Dir: dir, Replay: true, Now: clock.now})
	require.NoError(t, err)
	ref, err := refresh.New(refresh.Config{Regions: []refresh.Region{{Name: region, Zone: "ZZ", Provider: "file"}},
		Providers: map[string]forecast.Provider{"file": fp}, Store: store, Now: clock.now})
	require.NoError(t, err)
	_, err = ref.RefreshRegion(ctx, region)
	require.NoError(t, err)

	w, err := New(Config{Region: region, GPUs: 1, ID: "w-readme", Meter: &EstimateMeter{}, DefaultPowerW: 300,
		SysRoot: t.TempDir(), CheckpointRoot: t.TempDir(), OutputRoot: t.TempDir(), WorkRoot: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}, wstore, nil)
	require.NoError(t, err)
	defer w.Close()

	jobs, err := store.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"sleep", "0.2"}, Deadline: "2h", DurationEstimateS: 60})
	require.NoError(t, err)
	id := jobs[0].ID
	require.Equal(t, region, jobs[0].HomeRegion, "home defaults to the first configured region")
	_, err = store.SetPlans(ctx, map[string]greenq.Plan{id: {Region: region, Start: time.Now(), End: time.Now().Add(time.Minute), Urgent: true, Reason: "test"}})
	require.NoError(t, err)
	rel, err := queue.NewReleaser(store, queue.ReleaserConfig{Client: nopEnqueuer{}})
	require.NoError(t, err)
	_, err = rel.ReleaseDue(ctx)
	require.NoError(t, err)
	require.NoError(t, w.ProcessTask(ctx, task(id)))

	j := mustJob(t, store, id)
	require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
	rc := *j.Receipt
	require.Equal(t, 1.3, rc.PUE, "the server's PUE, though the worker has no config")
	require.True(t, strings.HasSuffix(rc.IntensitySource, ":forecast"), rc.IntensitySource)
	require.Equal(t, 300.0, rc.IntensityGCO2PerKWh)
	require.InDelta(t, rc.GPUHours*2, rc.CostUSD, 1e-12, "the server's price")
	require.InDelta(t, rc.GPUHours*20, rc.EmbodiedGCO2, 1e-12, "the server's embodied factor")
	require.Nil(t, rc.RestatedAt)

	restater, err := NewRestater(RestaterConfig{Store: store, Regions: store.ConfiguredRegions(), Now: clock.now})
	require.NoError(t, err)
	n, err := restater.RestateOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "no actuals for the run's hour yet")

	// Three hours on, the provider's actuals for the run's hour are in,
	// and they are not what was forecast.
	clock.set(clock.now().Add(3 * time.Hour))
	writeZone(t, dir, "ZZ", clock.now().Add(-3*time.Hour), "120.5")
	_, err = ref.RefreshRegion(ctx, region)
	require.NoError(t, err)
	n, err = restater.RestateOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	j = mustJob(t, store, id)
	got := *j.Receipt
	require.True(t, strings.HasSuffix(got.IntensitySource, ":actual"), got.IntensitySource)
	require.Equal(t, 120.5, got.IntensityGCO2PerKWh)
	require.InDelta(t, rc.EnergyKWh*1.3*120.5, got.GCO2, 1e-12)
	require.NotNil(t, got.GCO2AtFinish)
	require.Equal(t, rc.GCO2, *got.GCO2AtFinish)
	require.NotNil(t, got.RestatedAt)
	require.True(t, got.RestatedAt.Equal(clock.now().UTC()))
	require.Equal(t, rc.EnergyKWh, got.EnergyKWh, "energy is what was measured")
	require.Equal(t, rc.CostUSD, got.CostUSD, "and so is the cost")
	require.InDelta(t, got.SavedGCO2, got.SavedByWaitingGCO2+got.SavedByMovingGCO2, 1e-9)

	n, err = restater.RestateOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "restated once")
	left, err := store.RestateCandidates(ctx, time.Time{}, 10)
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestActualCovers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pt := func(h int, k forecast.PointKind) forecast.Point {
		return forecast.Point{Start: t0.Add(time.Duration(h) * time.Hour), End: t0.Add(time.Duration(h+1) * time.Hour), GCO2PerKWh: 1, Kind: k}
	}
	s := forecast.Series{Points: []forecast.Point{pt(0, forecast.KindActual), pt(1, forecast.KindActual), pt(2, forecast.KindForecast)}}
	require.True(t, actualCovers(s, t0.Add(10*time.Minute), t0.Add(2*time.Hour)))
	require.False(t, actualCovers(s, t0.Add(90*time.Minute), t0.Add(150*time.Minute)), "the third hour is a forecast")
	require.False(t, actualCovers(s, t0.Add(-time.Minute), t0.Add(time.Hour)), "not covered from the start")
	require.False(t, actualCovers(forecast.Series{Points: []forecast.Point{pt(0, forecast.KindActual), pt(2, forecast.KindActual)}}, t0, t0.Add(3*time.Hour)), "a gap")
}
