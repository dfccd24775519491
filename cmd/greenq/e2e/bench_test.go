package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// benchOut returns where a bench table goes: $GREENQ_BENCH_OUT, or a temp
// dir. The benchmarks of this package are report generators: each measures
// once and ignores b.N (make bench runs them with -benchtime 1x).
func benchOut(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("GREENQ_BENCH_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("bench output dir: %v", err)
	}
	return filepath.Join(dir, name)
}

// writeCyclic writes zone's testdata values over and over as rows of step
// from base for n rows, under file name as.
func writeCyclic(t testing.TB, dir, zone, as string, base time.Time, step time.Duration, n int) {
	t.Helper()
	rows := loadRows(t, zone)
	var b bytes.Buffer
	b.WriteString("time_utc,gco2_per_kwh\n")
	for i := range n {
		fmt.Fprintf(&b, "%s,%s\n", base.Add(time.Duration(i)*step).UTC().Format(time.RFC3339), rows[i%len(rows)].Text)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, as+".csv"), b.Bytes(), 0o644))
}

// benchStack is a server and workers in four regions: three with real
// hourly history (jobs there wait hours for their green window) and "de",
// whose real values repeat every 16 rows of step, so jobs there are
// deferred to windows seconds ahead and released while the bench runs.
type benchStack struct {
	srv   *server
	redis *redisServer
	step  time.Duration
}

func startBenchStack(t testing.TB, slot time.Duration, workers int) *benchStack {
	t.Helper()
	r := startRedis(t, "--appendonly", "yes")
	dir := t.TempDir()
	now := time.Now()
	writeSeries(t, dir, now.Add(-30*time.Minute), time.Hour, "GB", "US-CAL-CISO", "CA-ON")
	writeCyclic(t, dir, "DE-LU", "DE-LU", now.Truncate(slot).Add(-time.Hour), slot, int(4*time.Hour/slot))
	regions := []region{{Name: "gb", Zone: "GB"}, {Name: "us", Zone: "US-CAL-CISO"}, {Name: "ca", Zone: "CA-ON"}, {Name: "de", Zone: "DE-LU"}}
	path := writeConfig(t, stackConfig{Redis: r.URL(), FileDir: dir, Regions: regions, Replan: "@every 5s"})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	// The API's per-tenant rate limit would measure the limiter, not greenq.
	fmt.Fprintf(f, "api: {rate_per_second: -1}\n")
	require.NoError(t, f.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data = bytes.Replace(data, []byte("slot: 1s"), []byte("slot: "+slot.String()), 1)
	require.NoError(t, os.WriteFile(path, data, 0o644))

	srv := startServer(t, "server", path)
	for i := range workers {
		reg := regions[i%len(regions)].Name
		startWorker(t, fmt.Sprintf("worker-%d-%s", i, reg), path, reg, 64)
	}
	if workers > 0 {
		srv.API.waitReady(t, true, "gb", "us", "ca", "de")
	} else {
		waitFor(t, 30*time.Second, "series for every region", func() bool {
			for _, reg := range regions {
				if f, err := srv.API.forecast(reg.Name); err != nil || len(f.Points) == 0 {
					return false
				}
			}
			return true
		})
	}
	return &benchStack{srv: srv, redis: r, step: slot}
}

// usedMemory is INFO memory's used_memory in bytes.
func usedMemory(t testing.TB, r *redisServer) int64 {
	t.Helper()
	c := r.Client()
	defer c.Close()
	info, err := c.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(info)
	require.NotNil(t, m)
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

var releasedLine = regexp.MustCompile(`msg=released .*job=(\S+) .*lag=(\S+) urgent=(\w+)`)

// releaseLags reads the server's release log: each job's lag from planned
// start to release (negative would be early), for the jobs in ids.
func releaseLags(log string, ids map[string]bool) (lags []time.Duration) {
	for _, line := range strings.Split(log, "\n") {
		m := releasedLine.FindStringSubmatch(line)
		if m == nil || !ids[m[1]] || m[3] == "true" {
			continue
		}
		if d, err := time.ParseDuration(m[2]); err == nil {
			lags = append(lags, d)
		}
	}
	return lags
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// hammer runs fn from n goroutines until d passes and returns each call's
// latency and the number of failures.
func hammer(n int, d time.Duration, fn func(g int) error) (lats []time.Duration, fails int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := fn(g); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats, fails = append(lats, mine...), fails+bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lats, fails
}

// probeReleases submits n jobs in "de", one every gap, each deferred to a
// green window a few rows ahead, waits until every one is released and
// returns their release lags.
func probeReleases(t testing.TB, b *benchStack, n int, gap time.Duration) []time.Duration {
	t.Helper()
	ids := map[string]bool{}
	var last time.Time
	for range n {
		deadline := time.Now().Add(12 * b.step)
		last = deadline
		j := b.srv.API.submit(t, greenq.SubmitRequest{Name: "bench-probe", Regions: []string{"de"},
			DurationEstimateS: int64(b.step / time.Second), Deadline: deadline.UTC().Format(time.RFC3339Nano), Command: []string{"true"}})[0]
		ids[j.ID] = true
		time.Sleep(gap) // a steady trickle, as users submit
	}
	waitFor(t, time.Until(last)+30*time.Second, "every probe released", func() bool {
		return len(releaseLags(b.srv.Log(), ids)) == n
	})
	return releaseLags(b.srv.Log(), ids)
}

func earlyCount(lags []time.Duration) int {
	n := 0
	for _, l := range lags {
		if l < 0 {
			n++
		}
	}
	return n
}

// BenchmarkSubmit compares HTTP submit throughput (8 concurrent clients)
// with raw asynq Client.Enqueue (8 goroutines) on the same Redis in the
// same run, and measures submit p99 and release latency (planned start →
// released). Writes $GREENQ_BENCH_OUT/submit.md.
func BenchmarkSubmit(b *testing.B) {
	out := benchOut(b, "submit.md")
	// Throughput on the production slot (15 min) and without workers, so
	// released tasks wait on their region queues as the raw asynq tasks do
	// and no job processes compete for the CPU; release latency below on a
	// 2 s slot, so windows open within the run.
	stack := startBenchStack(b, 15*time.Minute, 0)
	const d = 5 * time.Second

	client := asynq.NewClient(asynq.RedisClientOpt{Addr: stack.redis.Addr()})
	defer client.Close()
	payload := []byte(`{"job_id":"01jbenchbenchbenchbenchbenc"}`)
	rawLats, rawFails := hammer(8, d, func(int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:raw", payload), asynq.Queue("bench-raw"))
		return err
	})
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: stack.redis.Addr()})
	_ = insp.DeleteQueue("bench-raw", true)
	insp.Close()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	// Submit plans each job at once (a provisional plan), over every slot
	// up to its deadline: the deadline sets the work per submit.
	submitFor := func(ahead time.Duration) ([]time.Duration, int) {
		body := fmt.Sprintf(`{"name":"bench-submit","command":["true"],"duration_estimate_s":600,"regions":["gb","us","ca"],"deadline":%q}`,
			time.Now().Add(ahead).UTC().Format(time.RFC3339))
		return hammer(8, d, func(int) error {
			resp, err := hc.Post(stack.srv.URL+"/v1/jobs", "application/json", strings.NewReader(body))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	shortLats, shortFails := submitFor(time.Hour)
	httpLats, httpFails := submitFor(20 * time.Hour)
	rawRate := float64(len(rawLats)) / d.Seconds()
	httpRate := float64(len(httpLats)) / d.Seconds()
	shortRate := float64(len(shortLats)) / d.Seconds()
	stack.srv.Stop(10 * time.Second)
	rb := startBenchStack(b, 2*time.Second, 4)
	lags := probeReleases(b, rb, 30, 300*time.Millisecond)

	var md strings.Builder
	fmt.Fprintf(&md, "## Submit throughput and release latency (`BenchmarkSubmit`, cmd/greenq/e2e)\n\n")
	fmt.Fprintf(&md, "Real `greenq server` process (API rate limit off, planner and release loop running, no workers: released tasks wait on their region queues as the raw asynq tasks do), one redis-server (AOF everysec), %s per side, 8 concurrent clients each.\n\n", d)
	fmt.Fprintf(&md, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&md, "| raw asynq `Client.Enqueue` (8 goroutines) | %.0f tasks/s (p99 %s, %d errors) |\n", rawRate, ms(pct(rawLats, 0.99)), rawFails)
	fmt.Fprintf(&md, "| HTTP `POST /v1/jobs` (8 clients), deadline 1 h (%d slots) | %.0f jobs/s (%d errors) |\n", int(time.Hour/stack.step)+1, shortRate, shortFails)
	fmt.Fprintf(&md, "| ratio HTTP / raw asynq, deadline 1 h (goal ≥ 0.5) | **%.3f** |\n", shortRate/rawRate)
	fmt.Fprintf(&md, "| submit latency p50 / p99, deadline 1 h | %s / %s |\n", ms(pct(shortLats, 0.5)), ms(pct(shortLats, 0.99)))
	fmt.Fprintf(&md, "| HTTP `POST /v1/jobs` (8 clients), deadline 20 h (%d slots) | %.0f jobs/s (%d errors) |\n", int(20*time.Hour/stack.step)+1, httpRate, httpFails)
	fmt.Fprintf(&md, "| ratio HTTP / raw asynq, deadline 20 h (goal ≥ 0.5) | **%.3f** |\n", httpRate/rawRate)
	fmt.Fprintf(&md, "| submit latency p50 / p99, deadline 20 h | %s / %s |\n", ms(pct(httpLats, 0.5)), ms(pct(httpLats, 0.99)))
	fmt.Fprintf(&md, "| release latency p50 / p99 (planned start → released, %d deferred jobs, %s slot) | %s / %s |\n", len(lags), rb.step, ms(pct(lags, 0.5)), ms(pct(lags, 0.99)))
	fmt.Fprintf(&md, "| releases before the planned start | %d |\n", earlyCount(lags))
	require.NoError(b, os.WriteFile(out, []byte(md.String()), 0o644))
	fmt.Print(md.String()) // b.Log would keep only its first lines
	require.Zero(b, earlyCount(lags), "never early")
}

// BenchmarkLoad queues 10 000 jobs over 4 regions with 8 workers and
// re-plans every 5 s, then measures API latency (GET /v1/jobs/{id} and
// POST /v1/jobs) under that load, release lag, and Redis memory per job.
// Writes $GREENQ_BENCH_OUT/load.md.
func BenchmarkLoad(b *testing.B) {
	out := benchOut(b, "load.md")
	stack := startBenchStack(b, 10*time.Second, 8)
	memBefore := usedMemory(b, stack.redis)

	const n, batch = 10000, 1000
	var ids []string
	regions := [][]string{{"gb"}, {"us"}, {"ca"}, {"gb", "us"}, {"gb", "us", "ca"}, nil}
	deadline := time.Now().Add(20 * time.Hour).UTC().Format(time.RFC3339)
	queueStart := time.Now()
	for len(ids) < n {
		var reqs []greenq.SubmitRequest
		for i := range batch {
			reqs = append(reqs, greenq.SubmitRequest{Name: fmt.Sprintf("load-%d", i%50), Command: []string{"true"},
				DurationEstimateS: int64(600 + 60*(i%30)), Regions: regions[i%len(regions)], Deadline: deadline})
		}
		st, raw, err := stack.srv.API.do("POST", "/v1/jobs", map[string]any{"jobs": reqs})
		require.NoError(b, err)
		require.Equal(b, http.StatusCreated, st, "%.300s", raw)
		for _, j := range decodeJobs(b, raw) {
			ids = append(ids, j.ID)
		}
	}
	queueTook := time.Since(queueStart)
	waitFor(b, 5*time.Minute, "the 10 000 jobs to be planned", func() bool {
		st, raw, err := stack.srv.API.do("GET", "/v1/jobs?state=pending&limit=1", nil)
		return err == nil && st == 200 && bytes.Contains(raw, []byte(`"jobs":[]`))
	})
	planTook := time.Since(queueStart)
	memQueued := usedMemory(b, stack.redis)

	// API under load, while probes are released in "de".
	const d = 30 * time.Second
	var (
		lags []time.Duration
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() { defer wg.Done(); lags = probeReleases(b, stack, 40, 500*time.Millisecond) }()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	postBody := fmt.Sprintf(`{"name":"load-post","command":["true"],"duration_estimate_s":600,"deadline":%q}`, deadline)
	var getLats, postLats []time.Duration
	var getFails, postFails int
	var mu sync.WaitGroup
	mu.Add(2)
	go func() {
		defer mu.Done()
		getLats, getFails = hammer(4, d, func(int) error {
			resp, err := hc.Get(stack.srv.URL + "/v1/jobs/" + ids[rand.IntN(len(ids))])
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}()
	go func() {
		defer mu.Done()
		postLats, postFails = hammer(2, d, func(int) error {
			resp, err := hc.Post(stack.srv.URL+"/v1/jobs", "application/json", strings.NewReader(postBody))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}()
	mu.Wait()
	wg.Wait()
	total := len(ids) + len(postLats) + len(lags)
	memAfter := usedMemory(b, stack.redis)

	var md strings.Builder
	fmt.Fprintf(&md, "## Load: 10 000 queued jobs (`BenchmarkLoad`, cmd/greenq/e2e)\n\n")
	fmt.Fprintf(&md, "One `greenq server` process, 8 `greenq worker` processes (2 per region, 64 GPUs each), 4 regions, slot %s, re-plan every 5 s, one redis-server (AOF everysec), API rate limit off. Load measured for %s: 4 clients reading random jobs, 2 clients submitting, and a probe job submitted every 0.5 s into a green window a few slots ahead.\n\n", stack.step, d)
	fmt.Fprintf(&md, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&md, "| queue 10 000 jobs (10 × `POST /v1/jobs` of 1 000) | %s |\n", queueTook.Round(time.Millisecond))
	fmt.Fprintf(&md, "| until none is pending (first plan of all 10 000) | %s |\n", planTook.Round(time.Millisecond))
	fmt.Fprintf(&md, "| `GET /v1/jobs/{id}` p50 / p99 | %s / %s (%d requests, %d errors) |\n", ms(pct(getLats, 0.5)), ms(pct(getLats, 0.99)), len(getLats), getFails)
	fmt.Fprintf(&md, "| `POST /v1/jobs` p50 / p99 | %s / %s (%d requests, %d errors) |\n", ms(pct(postLats, 0.5)), ms(pct(postLats, 0.99)), len(postLats), postFails)
	fmt.Fprintf(&md, "| release lag p50 / p99 (planned start → released, %d probes) | %s / %s |\n", len(lags), ms(pct(lags, 0.5)), ms(pct(lags, 0.99)))
	fmt.Fprintf(&md, "| releases before the planned start | %d |\n", earlyCount(lags))
	fmt.Fprintf(&md, "| Redis used_memory: before / 10 000 queued / end | %.1f / %.1f / %.1f MiB |\n",
		float64(memBefore)/(1<<20), float64(memQueued)/(1<<20), float64(memAfter)/(1<<20))
	fmt.Fprintf(&md, "| Redis memory per queued job | %.2f KiB |\n", float64(memQueued-memBefore)/float64(n)/1024)
	fmt.Fprintf(&md, "| Redis memory per job at the end (%d jobs) | %.2f KiB |\n", total, float64(memAfter-memBefore)/float64(total)/1024)
	require.NoError(b, os.WriteFile(out, []byte(md.String()), 0o644))
	fmt.Print(md.String()) // b.Log would keep only its first lines
	require.Zero(b, earlyCount(lags), "never early")
}
