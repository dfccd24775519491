package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// BenchmarkHTTPSubmit measures POST /v1/jobs through the real API and
// store on the test Redis, 8 clients at once, with a week of hourly signal
// per region (each submit makes a provisional plan).
func BenchmarkHTTPSubmit(b *testing.B) {
	rdb := redistest.Client(b)
	ctx := context.Background()
	regions := []greenq.Region{{Name: redistest.Unique("a"), PUE: 1.1}, {Name: redistest.Unique("b"), PUE: 1.2}, {Name: redistest.Unique("c"), PUE: 1.3}}
	store, err := queue.NewStore(rdb, queue.Config{Prefix: redistest.Unique("hb"), Regions: regions})
	require.NoError(b, err)
	now := time.Now().Truncate(time.Hour)
	for i, r := range regions {
		s := forecast.Series{Region: r.Name, Zone: "Z", Source: "bench", Signal: forecast.SignalAverage, IssuedAt: now}
		for h := -24; h < 7*24; h++ {
			start := now.Add(time.Duration(h) * time.Hour)
			s.Points = append(s.Points, forecast.Point{Start: start, End: start.Add(time.Hour), GCO2PerKWh: 100 + float64((h*(i+3))%97), Kind: forecast.KindForecast})
		}
		require.NoError(b, store.PutSeries(ctx, s))
	}
	srv, err := api.New(api.Config{RatePerSecond: -1}, store)
	require.NoError(b, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	body := fmt.Sprintf(`{"name":"bench","command":["true"],"duration_estimate_s":600,"deadline":%q}`, time.Now().Add(20*time.Hour).UTC().Format(time.RFC3339))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := hc.Post(ts.URL+"/v1/jobs", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body) // a drained body lets the connection be reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkAsynqEnqueue is BenchmarkHTTPSubmit's baseline: raw asynq
// Client.Enqueue on the same Redis, 8 goroutines. Compare ns/op of the two
// from one run (the ratio is what issue 2's goal is stated in).
func BenchmarkAsynqEnqueue(b *testing.B) {
	client := asynq.NewClient(redistest.AsynqOpt(b))
	defer client.Close()
	q := redistest.Unique("bench-raw")
	in := asynq.NewInspector(redistest.AsynqOpt(b))
	defer func() { _ = in.DeleteQueue(q, true); _ = in.Close() }()
	payload := []byte(`{"job_id":"01jbenchbenchbenchbenchbenc"}`)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Enqueue(asynq.NewTask("bench:raw", payload), asynq.Queue(q)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
