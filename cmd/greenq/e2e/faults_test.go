package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// nowStack writes a series in which now is the greenest time for hours
// (California's real history from 2023-09-13T23:00Z, hourly, rising after
// the current hour) so jobs start at once, and returns a config for one
// region "us" on rs.
func nowStack(t *testing.T, redisURL string) string {
	t.Helper()
	dir := t.TempDir()
	writeSeries(t, dir, time.Now().Add(-30*time.Minute), time.Hour, "US-CAL-CISO")
	return writeConfig(t, stackConfig{Redis: redisURL, FileDir: dir, Regions: []region{{Name: "us", Zone: "US-CAL-CISO"}}})
}

// logsOf returns job id's kept output.
func logsOf(a *apiClient, id string) string {
	st, raw, err := a.do("GET", "/v1/jobs/"+id+"/logs", nil)
	if err != nil || st != http.StatusOK {
		return ""
	}
	return string(raw)
}

// TestWorkerKilledMidJob kills a worker with SIGKILL while its job runs:
// asynq's lease recovery hands the task to another worker, the job runs
// again there and succeeds, the record shows the second attempt, and the
// receipt counts only the run that finished.
//
// asynq lets a dead worker's lease run 30 s and recovers tasks whose lease
// expired 30 s earlier, checking every minute, then retries after 15 s or
// more. The test stands in for that wait without touching greenq: it moves
// the task's lease expiry into the past in asynq's lease set (the only
// thing the 60 s would change), starts the second worker (asynq recovers at
// start-up), and runs the retried task now, as `asynq task run` would.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "yes")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	wa := startWorker(t, "worker-a", cfg, "us", 1)
	srv.API.waitReady(t, true, "us")

	job := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-kill", DurationEstimateS: 5, Deadline: "10m",
		Command: []string{"sh", "-c", "echo started attempt; sleep 2.5; echo finished"}})[0]
	srv.API.waitJob(t, job.ID, 20*time.Second, "running on worker-a", func(j *greenq.Job) bool {
		return j.State == greenq.StateRunning && j.Run != nil && j.Run.Worker == "worker-a"
	})
	waitFor(t, 10*time.Second, "the job's first output", func() bool {
		return strings.Contains(logsOf(srv.API, job.ID), "started attempt")
	})
	wa.Kill()

	// asynq's lease on the task, as the dead worker left it.
	c := r.Client()
	defer c.Close()
	ctx := context.Background()
	leaseKey := "asynq:{" + regionQueue("us") + "}:lease"
	taskID := job.ID + ":1"
	_, err := c.ZScore(ctx, leaseKey, taskID).Result()
	require.NoError(t, err, "asynq lease of task %s in %s", taskID, leaseKey)
	require.NoError(t, c.ZAdd(ctx, leaseKey, redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).Unix()), Member: taskID}).Err())
	// By the time asynq reclaims a task for real (30 s lease, then its
	// recoverer), the dead worker's 15 s heartbeat has lapsed too; greenq
	// refuses to start a job again while the worker running it still beats.
	require.NoError(t, c.ZAdd(ctx, "greenq:{greenq}:workers:expiry", redis.Z{Score: 0, Member: "worker-a"}).Err())

	startWorker(t, "worker-b", cfg, "us", 1)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr()})
	defer insp.Close()
	waitFor(t, 15*time.Second, "asynq to recover the task for retry", func() bool {
		info, err := insp.GetTaskInfo(regionQueue("us"), taskID)
		return err == nil && info.State == asynq.TaskStateRetry
	})
	require.NoError(t, insp.RunTask(regionQueue("us"), taskID))

	j := srv.API.waitFinal(t, job.ID, 30*time.Second)
	require.Equal(t, greenq.StateSucceeded, j.State, "error: %s", j.Error)
	require.Equal(t, 2, j.Attempts, "the record shows the second attempt")
	require.Equal(t, "worker-b", j.Run.Worker)
	require.Equal(t, 2, j.Run.Attempt)
	require.NotNil(t, j.Receipt)
	require.NotNil(t, j.Run.FinishedAt)
	run2 := j.Run.FinishedAt.Sub(j.Run.StartedAt).Seconds()
	require.InDelta(t, run2, j.Receipt.DurationS, 0.5, "the receipt counts the finished run only")
	require.LessOrEqual(t, len(j.Segments), 1, "segments: %+v", j.Segments)
	for _, s := range j.Segments {
		require.Equal(t, "worker-b", s.Worker)
	}
	logs := logsOf(srv.API, j.ID)
	require.Contains(t, logs, "finished")
	requireProcessed(t, topology{Redis: r.URL()}, map[string]int{"us": 2}) // the lost attempt and the retry
	requireOneTaskPerJob(t, topology{Redis: r.URL()}, "us", 1)
}

// TestServerKilledDuringReleases kills the only server with SIGKILL while
// its release loop works through a sweep whose trials capacity spreads one
// per second, then starts a new server: every job is still listed and runs
// once (asynq processed exactly one task per job, every record one attempt).
func TestServerKilledDuringReleases(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "yes")
	cfg := nowStack(t, r.URL())
	s1 := startServer(t, "server-1", cfg)
	startWorker(t, "worker", cfg, "us", 1)
	s1.API.waitReady(t, true, "us")

	const n = 16
	jobs := s1.API.submit(t, greenq.SubmitRequest{Name: "e2e-sweep", Kind: greenq.KindSweep, Trials: n,
		DurationEstimateS: 1, Deadline: "5m", Command: []string{"sh", "-c", "echo trial $GREENQ_TRIAL"}})
	require.Len(t, jobs, n)
	waitFor(t, 20*time.Second, "the release loop to be part-way through", func() bool {
		done := 0
		for _, j := range s1.API.jobs(t) {
			if j.State == greenq.StateSucceeded {
				done++
			}
		}
		return done >= 3
	})
	s1.Kill()
	s2 := startServer(t, "server-2", cfg)

	listed := s2.API.jobs(t)
	require.Len(t, listed, n, "every job still listed")
	for _, j := range jobs {
		got := s2.API.waitFinal(t, j.ID, 90*time.Second)
		require.Equal(t, greenq.StateSucceeded, got.State, "job %s: %s", j.ID, got.Error)
		require.Equal(t, 1, got.Attempts, "job %s ran once", j.ID)
		require.NotNil(t, got.Plan, "job %s was planned", j.ID)
		require.False(t, got.Run.FinishedAt.After(got.Deadline))
	}
	requireProcessed(t, topology{Redis: r.URL()}, map[string]int{"us": n})
	requireOneTaskPerJob(t, topology{Redis: r.URL()}, "us", n)
}

// TestRedisRestartWithAOF shuts Redis down under 100 queued jobs and starts
// it again from its AOF: /readyz says not ready during the outage and ready
// after, submit is refused with 503 meanwhile, all 100 jobs are still there
// and planned, and the server and workers carry on without a restart.
func TestRedisRestartWithAOF(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	dir := t.TempDir()
	// Great Britain's real hours from 2023-09-13T23:00Z: the greenest hour
	// in the next six is 4 h away, so these jobs wait, planned.
	writeSeries(t, dir, time.Now().Add(-30*time.Minute), time.Hour, "GB", "US-CAL-CISO")
	cfg := writeConfig(t, stackConfig{Redis: r.URL(), FileDir: dir,
		Regions: []region{{Name: "gb", Zone: "GB"}, {Name: "us", Zone: "US-CAL-CISO"}}})
	srv := startServer(t, "server", cfg)
	// Enough GPUs that all 100 jobs fit the green hour.
	wgb := startWorker(t, "worker-gb", cfg, "gb", 64)
	wus := startWorker(t, "worker-us", cfg, "us", 1)
	srv.API.waitReady(t, true, "gb", "us")

	const n = 100
	ids := map[string]bool{}
	for range n {
		j := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-queued", Regions: []string{"gb"}, DurationEstimateS: 60,
			Deadline: "6h", Command: []string{"true"}})[0]
		ids[j.ID] = true
	}
	allPlanned := func() bool {
		listed := srv.API.jobs(t)
		planned := 0
		for _, j := range listed {
			if ids[j.ID] && j.State == greenq.StatePlanned && j.Plan != nil && j.Plan.Region == "gb" {
				planned++
			}
		}
		return planned == n
	}
	waitFor(t, 20*time.Second, "100 planned jobs", allPlanned)

	r.Shutdown()
	waitFor(t, 10*time.Second, "/readyz to say not ready", func() bool {
		st, _, err := srv.API.do("GET", "/readyz", nil)
		return err == nil && st == http.StatusServiceUnavailable
	})
	st, raw, err := srv.API.do("POST", "/v1/jobs", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "1h"})
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, st, "%s", raw)
	code, _, errOut := cli(t, "submit", "--api", srv.URL, "--deadline", "1h", "--", "true")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, strings.ToLower(errOut), "redis")

	r.Start()
	waitFor(t, 30*time.Second, "/readyz to say ready", func() bool {
		st, _, err := srv.API.do("GET", "/readyz", nil)
		return err == nil && st == http.StatusOK
	})
	require.Len(t, srv.API.jobs(t), n, "100 of 100 queued jobs still there")
	require.True(t, allPlanned(), "every job still planned")
	for _, p := range []*proc{srv.proc, wgb, wus} {
		require.True(t, p.Running(), "%s kept running", p.name)
	}

	// The server (its leader loops) and the workers reconnected by themselves.
	j := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-after", Regions: []string{"us"}, DurationEstimateS: 1,
		Deadline: "2m", Command: []string{"echo", "after restart"}})[0]
	j = srv.API.waitFinal(t, j.ID, 60*time.Second)
	require.Equal(t, greenq.StateSucceeded, j.State, j.Error)
	require.Equal(t, "worker-us", j.Run.Worker)
}

// TestRedisFull fills Redis to maxmemory (noeviction): submit is refused
// with 503 (exit 1 from the CLI) naming the cause, nothing is half-written,
// and submits work again once memory is freed.
func TestRedisFull(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	srv.API.waitReady(t, false)
	srv.API.submit(t, greenq.SubmitRequest{Command: []string{"true"}, Deadline: "1h"})

	c := r.Client()
	defer c.Close()
	ctx := context.Background()
	var fill []string
	// fillUp writes fillers until Redis refuses one, in ever smaller sizes:
	// a refused 32 KiB filler frees its own query buffer, which would leave
	// room for a small request. Called again before each check, since the
	// server's own periodic writes and expiries move the edge.
	fillUp := func() {
		for _, size := range []int{32 << 10, 1 << 10, 64} {
			filler := strings.Repeat("x", size)
			for {
				k := "e2e:fill:" + strconv.Itoa(len(fill))
				err := c.Set(ctx, k, filler, 0).Err()
				if err != nil {
					require.Contains(t, err.Error(), "OOM", "filling Redis")
					break
				}
				fill = append(fill, k)
				require.Less(t, len(fill), 100000, "Redis never filled up")
			}
		}
	}
	fillUp()
	jobsBefore := srv.API.jobs(t)

	for _, req := range []greenq.SubmitRequest{
		{Command: []string{"true"}, Deadline: "1h"},
		{Command: []string{"true"}, Deadline: "1h", Trials: 20},
		{Command: []string{"true"}, Deadline: "1h", Key: "idem-1"},
	} {
		fillUp()
		st, raw, err := srv.API.do("POST", "/v1/jobs", req)
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, st, "%s", raw)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(raw, &e))
		require.Equal(t, "unavailable", e.Error.Code)
		require.Contains(t, e.Error.Message, "maxmemory")
	}
	// redisKeys opens and closes a connection, whose freed buffers would
	// put Redis back under its limit: fill up after it.
	keysBefore := redisKeys(t, r)
	fillUp()
	code, out, errOut := cli(t, "submit", "--api", srv.URL, "--deadline", "1h", "--", "true")
	require.Equal(t, 1, code, "stdout %q", out)
	require.Contains(t, errOut, "maxmemory")
	require.Equal(t, keysBefore, redisKeys(t, r), "nothing half-written")
	require.Equal(t, len(jobsBefore), len(srv.API.jobs(t)))

	require.NoError(t, c.Del(ctx, fill...).Err())
	srv.API.submit(t, greenq.SubmitRequest{Command: []string{"true"}, Deadline: "1h", Key: "idem-1"})
	require.Len(t, srv.API.jobs(t), len(jobsBefore)+1)
}

// TestForecastProvidersDown runs regions whose providers fail: a file
// provider whose directory is gone, a UK Carbon Intensity API answering
// 500, and a Carbon Aware API answering garbage. Each region's series says
// it fell back, and jobs there still run before their deadlines.
func TestForecastProvidersDown(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
	}))
	defer fail.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data": [{"from": "yesterday", "intensity": {"forecast": "lots"`))
	}))
	defer garbage.Close()
	cfg := writeConfig(t, stackConfig{Redis: r.URL(), FileDir: filepath.Join(t.TempDir(), "removed"),
		UKCIURL: fail.URL, CAURL: garbage.URL,
		Regions: []region{{Name: "fs", Zone: "GB"}, {Name: "uk", Zone: "GB", Provider: "ukci"},
			{Name: "ca", Zone: "westus", Provider: "carbonaware"}}})
	srv := startServer(t, "server", cfg)
	for _, reg := range []string{"fs", "uk", "ca"} {
		startWorker(t, "worker-"+reg, cfg, reg, 1)
	}
	srv.API.waitReady(t, false, "fs", "uk", "ca")
	for _, reg := range []string{"fs", "uk", "ca"} {
		f, err := srv.API.forecast(reg)
		require.NoError(t, err)
		t.Logf("region %s: series source %q, %d points", reg, f.Source, len(f.Points))
		require.Truef(t, f.Source == "none" || strings.Contains(f.Source, "down") || strings.Contains(f.Source, "last-good"),
			"region %s: source %q says it fell back", reg, f.Source)
	}

	var jobs []*greenq.Job
	for _, reg := range []string{"fs", "uk", "ca"} {
		jobs = append(jobs, srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-fallback-" + reg, Regions: []string{reg},
			DurationEstimateS: 2, Deadline: time.Now().Add(20 * time.Second).UTC().Format(time.RFC3339Nano),
			Command: []string{"true"}})[0])
	}
	for _, j := range jobs {
		got := srv.API.waitFinal(t, j.ID, 40*time.Second)
		require.Equal(t, greenq.StateSucceeded, got.State, "job in %v: %s", got.Regions, got.Error)
		require.NotNil(t, got.Plan)
		require.False(t, got.Run.FinishedAt.After(got.Deadline), "deadline missed")
	}
	st, raw, err := srv.API.do("GET", "/metrics", nil)
	require.NoError(t, err)
	require.Equal(t, 200, st)
	require.Contains(t, string(raw), "greenq_forecast_fallback_total")
}
