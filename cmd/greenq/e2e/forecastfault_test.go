package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/refresh"
)

// scriptedProvider answers well, slowly (after lag, ignoring its context,
// as a hung upstream behind a client without a timeout would) or with
// garbage, as the test switches it.
type scriptedProvider struct {
	green time.Time // start of the 4 s green window in good answers

	mu       sync.Mutex
	mode     string // "good", "slow" or "garbage"
	lag      time.Duration
	answered int // slow fetches that have answered
}

func (p *scriptedProvider) set(mode string) {
	p.mu.Lock()
	p.mode = mode
	p.mu.Unlock()
}

func (p *scriptedProvider) slowAnswers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered
}

func (p *scriptedProvider) Fetch(_ context.Context, zone string, _, _ time.Time) (forecast.Series, error) {
	p.mu.Lock()
	mode, lag := p.mode, p.lag
	p.mu.Unlock()
	switch mode {
	case "slow":
		time.Sleep(lag)
		p.mu.Lock()
		p.answered++
		p.mu.Unlock()
	case "garbage":
		return forecast.Series{}, fmt.Errorf("decode %s: unexpected token '<' at offset 0: %w", zone, forecast.ErrBadPayload)
	}
	return p.series(time.Now()), nil
}

// series is 24 h of hourly actuals at 300 gCO2/kWh, then one-second
// forecast points for 10 min at 300 except 50 in the green window.
func (p *scriptedProvider) series(now time.Time) forecast.Series {
	s := forecast.Series{Source: "scripted", Signal: forecast.SignalAverage, IssuedAt: now.UTC()}
	cut := now.Truncate(time.Second)
	for t := cut.Add(-24 * time.Hour); t.Before(cut); {
		next := t.Add(time.Hour)
		if next.After(cut) {
			next = cut
		}
		s.Points = append(s.Points, forecast.Point{Start: t, End: next, GCO2PerKWh: 300, Kind: forecast.KindActual})
		t = next
	}
	for t := cut; t.Before(cut.Add(10 * time.Minute)); t = t.Add(time.Second) {
		v := 300.0
		if !t.Before(p.green) && t.Before(p.green.Add(4*time.Second)) {
			v = 50
		}
		s.Points = append(s.Points, forecast.Point{Start: t, End: t.Add(time.Second), GCO2PerKWh: v, Kind: forecast.KindForecast})
	}
	return s
}

// TestForecastSlowAndGarbageMidRun runs the forecast refresher, planner,
// releaser and workers in this process against a real redis-server, with
// a refresh timeout of 300 ms and no caching, over two regions whose
// providers answer well and then fail mid-run: one answers only after
// 3 s (ignoring its deadline), the other returns garbage. (The server's
// refresh TTL, 10 min, and timeout, 30 s, are not configurable in
// greenq.yaml, so the binary cannot show this in a test's time.)
//
// Each failure falls back to the last good series at once (the slow one
// without waiting for the answer), then to greenq's own forecaster once
// that is stale; the stored series' source says which, the jobs' plans say
// "signal for R: <source>", and both jobs still run before their deadlines.
func TestForecastSlowAndGarbageMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newInproc(t, "slow", "junk")
	green := time.Now().Truncate(time.Second).Add(6 * time.Second)
	slow := &scriptedProvider{green: green, mode: "good", lag: 3 * time.Second}
	junk := &scriptedProvider{green: green, mode: "good"}
	const staleAfter = time.Second
	ref, err := refresh.New(refresh.Config{
		Regions: []refresh.Region{
			{Name: "slow", Zone: "SLOW", Provider: "slowp"},
			{Name: "junk", Zone: "JUNK", Provider: "junkp"},
		},
		Providers:  map[string]forecast.Provider{"slowp": slow, "junkp": junk},
		Store:      p.Store,
		Logger:     testLogger(t),
		Timeout:    300 * time.Millisecond,
		TTL:        time.Nanosecond, // every refresh fetches
		MinBackoff: time.Nanosecond,
		MaxBackoff: time.Nanosecond,
		StaleAfter: staleAfter,
		Horizon:    2 * time.Hour,
	})
	require.NoError(t, err)
	refreshBoth := func() map[string]forecast.Series {
		out := map[string]forecast.Series{}
		for _, r := range []string{"slow", "junk"} {
			s, err := ref.RefreshRegion(ctx, r)
			require.NoError(t, err)
			stored, err := p.Store.Series(ctx, r)
			require.NoError(t, err)
			require.Equal(t, s.Source, stored.Source, "region %s: what the planner reads is what the refresh made", r)
			out[r] = stored
		}
		return out
	}
	// planReasons plans once and returns each job's stored plan reason.
	planReasons := func(ids map[string]string) map[string]string {
		_, err := p.Planner.PlanOnce(ctx)
		require.NoError(t, err)
		out := map[string]string{}
		for r, id := range ids {
			j, err := p.Store.Get(ctx, "", id)
			require.NoError(t, err)
			require.Equal(t, greenq.StatePlanned, j.State)
			require.NotNil(t, j.Plan)
			require.Equal(t, r, j.Plan.Region)
			out[r] = j.Plan.Reason
		}
		return out
	}

	series := refreshBoth()
	for r, s := range series {
		require.Equal(t, "scripted", s.Source, "region %s", r)
	}
	ids := map[string]string{}
	for _, r := range []string{"slow", "junk"} {
		jobs, err := p.Store.Submit(ctx, "e2e", greenq.SubmitRequest{Name: "e2e-forecast-" + r, Regions: []string{r},
			DurationEstimateS: 2, Deadline: "1m", Command: []string{"sleep", "0.2"}})
		require.NoError(t, err)
		ids[r] = jobs[0].ID
	}
	for r, reason := range planReasons(ids) {
		require.NotContains(t, reason, "signal for", "region %s: the provider's own signal", r)
	}

	// Mid-run: one provider hangs, the other returns garbage.
	slow.set("slow")
	junk.set("garbage")
	series = refreshBoth()
	require.Zero(t, slow.slowAnswers(), "the refresh gave up on the slow provider before it answered")
	for r, s := range series {
		require.Equal(t, "scripted:last-good", s.Source, "region %s", r)
		require.NoError(t, s.Validate())
		pt, ok := s.At(green)
		require.True(t, ok)
		require.Equal(t, 50.0, pt.GCO2PerKWh, "region %s: the last good answer serves", r)
	}
	reasons := planReasons(ids)
	for r, reason := range reasons {
		t.Logf("region %s, last good series: plan reason %q", r, reason)
		require.Contains(t, reason, "(signal for "+r+": scripted:last-good)",
			"region %s: the plan says it rests on the last good series, though its window did not move", r)
	}

	// Past StaleAfter the last good series is dropped for greenq's own
	// forecaster over the history the good answers left.
	time.Sleep(staleAfter + 100*time.Millisecond)
	series = refreshBoth()
	for r, s := range series {
		prov := map[string]string{"slow": "slowp", "junk": "junkp"}[r]
		require.Equal(t, "greenq-forecaster ("+prov+" down)", s.Source, "region %s", r)
		require.NoError(t, s.Validate())
		_, ok := s.At(time.Now().Add(30 * time.Minute))
		require.True(t, ok, "region %s: the forecaster covers the jobs' deadlines", r)
	}
	for r, reason := range planReasons(ids) {
		t.Logf("region %s, own forecaster: plan reason %q", r, reason)
		prov := map[string]string{"slow": "slowp", "junk": "junkp"}[r]
		require.Contains(t, reason, "(signal for "+r+": greenq-forecaster ("+prov+" down))",
			"region %s: the plan names the forecaster fallback", r)
	}

	// Both jobs still run, once, before their deadlines.
	p.runReleaser()
	p.startWorker("worker-slow", "slow", 0)
	p.startWorker("worker-junk", "junk", 0)
	for r, id := range ids {
		j := p.waitFinal(id, 30*time.Second)
		require.Equal(t, greenq.StateSucceeded, j.State, "region %s: %s", r, j.Error)
		require.Equal(t, 1, j.Attempts)
		require.False(t, j.Run.FinishedAt.After(j.Deadline), "region %s: deadline missed", r)
	}
}
