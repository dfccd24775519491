package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestLeaderFailover runs two server replicas; the follower takes over
// within the lease TTL (≤ 15 s) when the leader is killed with SIGKILL in
// the middle of a sweep, and no job is released twice.
func TestLeaderFailover(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	cfg := nowStack(t, r.URL())
	s1 := startServer(t, "server-1", cfg)
	s2 := startServer(t, "server-2", cfg)
	startWorker(t, "worker", cfg, "us", 1)
	waitFor(t, 15*time.Second, "a leader", func() bool { return s1.IsLeader() || s2.IsLeader() })
	leader, follower := s1, s2
	if s2.IsLeader() {
		leader, follower = s2, s1
	}
	require.False(t, follower.IsLeader(), "one leader at a time")
	follower.API.waitReady(t, true, "us")

	// One GPU: the planner spreads the trials one per second, so releases
	// are still going on when the leader dies.
	const n = 12
	jobs := follower.API.submit(t, greenq.SubmitRequest{Name: "e2e-failover", Trials: n, DurationEstimateS: 1,
		Deadline: "5m", Command: []string{"true"}})
	waitFor(t, 20*time.Second, "the first releases", func() bool {
		done := 0
		for _, j := range follower.API.jobs(t) {
			if j.State == greenq.StateSucceeded {
				done++
			}
		}
		return done >= 2
	})
	killed := time.Now()
	leader.Kill()
	waitFor(t, 20*time.Second, "the follower to lead", follower.IsLeader)
	took := time.Since(killed)
	t.Logf("takeover after %s", took)
	require.LessOrEqual(t, took, 15*time.Second, "takeover within the lease TTL")

	for _, j := range jobs {
		got := follower.API.waitFinal(t, j.ID, 60*time.Second)
		require.Equal(t, greenq.StateSucceeded, got.State, "job %s: %s", j.ID, got.Error)
		require.Equal(t, 1, got.Attempts, "job %s ran once", j.ID)
	}
	requireProcessed(t, topology{Redis: r.URL()}, map[string]int{"us": n})
	requireOneTaskPerJob(t, topology{Redis: r.URL()}, "us", n)
}

// TestWorkerSIGTERMLetsJobFinish stops a worker with SIGTERM while a job
// runs: the job finishes within the grace period and succeeds, and the
// worker exits cleanly after it.
func TestWorkerSIGTERMLetsJobFinish(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	w := startWorker(t, "worker", cfg, "us", 1)
	srv.API.waitReady(t, true, "us")

	job := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-graceful", DurationEstimateS: 3, Deadline: "5m",
		Command: []string{"sh", "-c", "echo begun; sleep 2; echo completed"}})[0]
	waitFor(t, 20*time.Second, "the job's first output", func() bool {
		return strings.Contains(logsOf(srv.API, job.ID), "begun")
	})
	w.Signal(syscall.SIGTERM)
	stopped := time.Now()
	code, ok := w.Wait(15 * time.Second)
	require.True(t, ok, "worker exits within the grace period")
	require.Equal(t, 0, code)

	j := srv.API.mustJob(t, job.ID)
	require.Equal(t, greenq.StateSucceeded, j.State, "error: %s", j.Error)
	require.Equal(t, 1, j.Attempts)
	require.Contains(t, logsOf(srv.API, job.ID), "completed")
	require.True(t, j.Run.FinishedAt.After(stopped), "the job ran on after SIGTERM")
	require.NotNil(t, j.Receipt)

}

// TestServerSIGTERMFinishesRequests sends SIGTERM to the server while a
// submit is half-way through its body: the server stops accepting new
// connections, yet the request in flight completes (201, job stored), and
// the server then exits cleanly.
func TestServerSIGTERMFinishesRequests(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	srv.API.waitReady(t, false)
	addr := strings.TrimPrefix(srv.URL, "http://")

	body := fmt.Sprintf(`{"name":"e2e-inflight","command":["true"],"deadline":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	half := len(body) / 2
	// Expect: 100-continue makes the server say when its handler starts
	// reading the body, so the signal below reaches a request that is
	// surely in flight (not still in the listen backlog).
	_, err = fmt.Fprintf(conn, "POST /v1/jobs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, len(body))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "100 Continue")
	_, err = br.ReadString('\n') // the blank line ending the interim response
	require.NoError(t, err)
	_, err = io.WriteString(conn, body[:half])
	require.NoError(t, err)

	srv.Signal(syscall.SIGTERM)
	waitFor(t, 10*time.Second, "the server to stop accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	require.True(t, srv.Running(), "the server waits for the request in flight")
	_, err = io.WriteString(conn, body[half:])
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), "e2e-inflight")

	code, ok := srv.Wait(20 * time.Second)
	require.True(t, ok, "server exits after the request")
	require.Equal(t, 0, code)

	// The job is stored: a new server lists it.
	s2 := startServer(t, "server-2", cfg)
	jobs := s2.API.jobs(t)
	require.Len(t, jobs, 1)
	require.Equal(t, "e2e-inflight", jobs[0].Name)
}
