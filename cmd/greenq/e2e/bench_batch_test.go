package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// BenchmarkBatchSubmit measures bulk submit, POST /v1/jobs:batch of 1 000
// jobs, against raw asynq Client.Enqueue of 1 000 tasks on the same Redis
// in the same run, rounds of the two interleaved so both see the same
// background (the planner re-planning what the batches queued). The
// figure is per job: raw asynq's time per task over the batch's time per
// job (higher is better; the goal is ≥ 0.5). Writes
// $GREENQ_BENCH_OUT/submit_batch.md.
func BenchmarkBatchSubmit(b *testing.B) {
	out := benchOut(b, "submit_batch.md")
	stack := startBenchStack(b, 15*time.Minute, 0)
	const n, rounds = 1000, 5

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: stack.redis.Addr()})
	defer client.Close()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: stack.redis.Addr()})
	defer insp.Close()
	payload := []byte(`{"job_id":"01jbenchbenchbenchbenchbenc"}`)
	enqueue := func(workers int) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					if _, err := client.Enqueue(asynq.NewTask("bench:raw", payload), asynq.Queue("bench-raw")); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		require.NoError(b, <-errs)
		_ = insp.DeleteQueue("bench-raw", true)
		return took
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 2 * time.Minute}
	batchBody := func(ahead time.Duration) []byte {
		deadline := time.Now().Add(ahead).UTC().Format(time.RFC3339)
		reqs := make([]greenq.SubmitRequest, n)
		regions := [][]string{{"gb", "us", "ca"}, {"gb"}, {"us", "ca"}}
		for i := range reqs {
			reqs[i] = greenq.SubmitRequest{Name: fmt.Sprintf("bench-batch-%d", i%20), Command: []string{"python", "train.py", fmt.Sprint(i)},
				DurationEstimateS: 600, Regions: regions[i%len(regions)], Deadline: deadline}
		}
		raw, err := json.Marshal(map[string]any{"jobs": reqs})
		require.NoError(b, err)
		return raw
	}
	batch := func(ahead time.Duration) time.Duration {
		body := batchBody(ahead)
		start := time.Now()
		resp, err := hc.Post(stack.srv.URL+"/v1/jobs:batch", "application/json", bytes.NewReader(body))
		require.NoError(b, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		require.NoError(b, err)
		require.Equal(b, http.StatusCreated, resp.StatusCode, "%.300s", raw)
		var list struct{ Jobs []json.RawMessage }
		require.NoError(b, json.Unmarshal(raw, &list))
		require.Len(b, list.Jobs, n)
		return took
	}

	var raw1, raw8, short, long []time.Duration
	for range rounds {
		raw1 = append(raw1, enqueue(1))
		short = append(short, batch(time.Hour))
		raw8 = append(raw8, enqueue(8))
		long = append(long, batch(20*time.Hour))
	}
	per := func(ds []time.Duration) time.Duration { // the median round, per item
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2] / n
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }
	r1, r8, bs, bl := per(raw1), per(raw8), per(short), per(long)

	var md strings.Builder
	fmt.Fprintf(&md, "## Bulk submit: a batch of 1 000 jobs against raw asynq (`BenchmarkBatchSubmit`, cmd/greenq/e2e)\n\n")
	fmt.Fprintf(&md, "Real `greenq server` process (API rate limit off, planner and release loop running, no workers), one redis-server (AOF everysec). "+
		"One `POST /v1/jobs:batch` of %d jobs (3 regions or fewer, 10-minute estimate; each job is validated, stored and given a provisional plan) "+
		"against %d raw asynq `Client.Enqueue` calls, %d interleaved rounds, the median round per job. Ratio: raw asynq's time per task over the batch's "+
		"time per job (higher is better; goal ≥ 0.5).\n\n", n, n, rounds)
	fmt.Fprintf(&md, "| measure | per job |\n|---|---|\n")
	fmt.Fprintf(&md, "| raw asynq `Client.Enqueue`, one at a time (1 goroutine) | %s |\n", us(r1))
	fmt.Fprintf(&md, "| raw asynq `Client.Enqueue`, 8 goroutines | %s |\n", us(r8))
	fmt.Fprintf(&md, "| `POST /v1/jobs:batch` of %d, deadline 1 h | %s |\n", n, us(bs))
	fmt.Fprintf(&md, "| `POST /v1/jobs:batch` of %d, deadline 20 h | %s |\n", n, us(bl))
	fmt.Fprintf(&md, "| **ratio batch / raw asynq one at a time, deadline 1 h (goal ≥ 0.5)** | **%.2f** |\n", float64(r1)/float64(bs))
	fmt.Fprintf(&md, "| ratio batch / raw asynq one at a time, deadline 20 h | %.2f |\n", float64(r1)/float64(bl))
	fmt.Fprintf(&md, "| ratio batch / raw asynq with 8 goroutines, deadline 1 h | %.2f |\n", float64(r8)/float64(bs))
	fmt.Fprintf(&md, "| ratio batch / raw asynq with 8 goroutines, deadline 20 h | %.2f |\n", float64(r8)/float64(bl))
	require.NoError(b, os.WriteFile(out, []byte(md.String()), 0o644))
	fmt.Print(md.String()) // b.Log would keep only its first lines
}
