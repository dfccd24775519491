package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor"
)

func readReading(t *testing.T, path string) executor.Reading {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var r executor.Reading
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

// greenq meter exits as the command did (128+N for a signal N) and writes
// its reading, saying what measured it, however the command ended.
func TestMeterExitStatusAndReading(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		argv []string
		code int
	}{
		{[]string{"sh", "-c", "echo out; exit 3"}, 3},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL)},
		{[]string{"true"}, 0},
		{[]string{"greenq-no-such-command"}, 127},
	} {
		out := filepath.Join(t.TempDir(), "reading.json")
		var stdout, stderr bytes.Buffer
		args := append([]string{"meter", "--out", out, "--gpus", "0,1", "--interval", "50ms", "--"}, c.argv...)
		code := Main(context.Background(), args, &stdout, &stderr)
		require.Equal(t, c.code, code, "%v: %s", c.argv, stderr.String())
		r := readReading(t, out)
		require.Equal(t, c.code, r.ExitCode)
		require.Equal(t, worker.MeterGreenq, r.Meter)
		require.Equal(t, []int{0, 1}, r.GPUs)
		require.Contains(t, []greenq.EnergySource{worker.SourceNVML, worker.SourceNVMLPowerSampling, worker.SourceEstimate}, r.Source)
		require.NotEmpty(t, r.CPUSource)
		require.False(t, r.End.Before(r.Start))
	}
}

// Flags after CMD are CMD's; a bad --gpus is refused, exit 2.
func TestMeterUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "r.json")
	require.Equal(t, 0, Main(context.Background(), []string{"meter", "--out", out, "sh", "-c", "exit 0", "--gpus", "x"}, &stdout, &stderr), stderr.String())
	require.Equal(t, 2, Main(context.Background(), []string{"meter", "--gpus", "x", "--", "true"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "--gpus")
	require.Equal(t, 2, Main(context.Background(), []string{"meter"}, &stdout, &stderr))
}

func TestMeterGPUs(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	got, err := meterGPUs("", env(map[string]string{"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_GPUS": "2,3"}))
	require.NoError(t, err)
	require.Equal(t, []int{2, 3}, got, "Slurm's node indices before CUDA's, which a cgroup may renumber")
	got, err = meterGPUs("", env(map[string]string{"CUDA_VISIBLE_DEVICES": "1"}))
	require.NoError(t, err)
	require.Equal(t, []int{1}, got)
	got, err = meterGPUs("", env(map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-8a1b,GPU-99"}))
	require.NoError(t, err)
	require.Len(t, got, 2, "UUIDs count, and are estimated")
	got, err = meterGPUs("", env(nil))
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = meterGPUs("3", env(map[string]string{"CUDA_VISIBLE_DEVICES": "0"}))
	require.NoError(t, err)
	require.Equal(t, []int{3}, got)
}

// The signals meter catches go to the command's process group, once.
func TestMeterPassesSignalsOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	sigs := make(chan chan<- os.Signal, 1)
	var out bytes.Buffer
	m := &meterRun{gpu: &worker.EstimateMeter{}, cpu: &worker.CPUMeter{CPUPowerW: 100, RAMPowerW: 10},
		gpus: nil, powerW: 300, out: filepath.Join(dir, "r.json"), stderr: &out, cmdOut: &out, cmdErr: &out,
		notify: func(c chan<- os.Signal) { sigs <- c }, stopNote: func(chan<- os.Signal) {}}
	done := make(chan int, 1)
	go func() {
		done <- m.run([]string{"sh", "-c", `n=0; trap 'n=$((n+1))' USR1; trap 'echo "got TERM after $n USR1"; exit 42' TERM; touch "$0"; while :; do sleep 0.05; done`, ready})
	}()
	c := <-sigs
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 10*time.Second, 10*time.Millisecond)
	c <- syscall.SIGUSR1
	time.Sleep(200 * time.Millisecond)
	c <- syscall.SIGTERM
	select {
	case code := <-done:
		require.Equal(t, 42, code, out.String())
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not end on SIGTERM")
	}
	require.Contains(t, out.String(), "got TERM after 1 USR1")
	require.Equal(t, 42, readReading(t, m.out).ExitCode)
}

// With the worker's variables, meter posts its reading with the job's
// token, and the command never sees the token.
func TestMeterPostsTheReadingWithTheJobToken(t *testing.T) {
	t.Parallel()
	type post struct {
		path, auth string
		r          executor.Reading
	}
	posts := make(chan post, 4)
	fails := 1 // the first answer is a 503: meter tries again
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd executor.Reading
		_ = json.NewDecoder(r.Body).Decode(&rd)
		if fails > 0 {
			fails--
			http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		posts <- post{r.URL.EscapedPath(), r.Header.Get("Authorization"), rd}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	env := map[string]string{worker.EnvJobToken: "greenq-job-abc", worker.EnvAPIURL: srv.URL + "/", worker.EnvJobID: "job/1"}
	p := newMeterPost(func(k string) string { return env[k] })
	require.NotNil(t, p)
	p.backoff = time.Millisecond
	var out bytes.Buffer
	m := &meterRun{gpu: &worker.EstimateMeter{}, cpu: &worker.CPUMeter{CPUPowerW: 100, RAMPowerW: 10},
		gpus: []int{0}, powerW: 300, stderr: &out, cmdOut: &out, cmdErr: &out, post: p,
		env: []string{"A=1", worker.EnvJobToken + "=greenq-job-abc", worker.EnvJobID + "=job/1"}}
	require.Equal(t, 3, m.run([]string{"sh", "-c", `echo "token=[$GREENQ_JOB_TOKEN] a=$A"; exit 3`}))
	require.Contains(t, out.String(), "token=[] a=1")
	got := <-posts
	require.Equal(t, "/v1/jobs/job%2F1/energy", got.path)
	require.Equal(t, "Bearer greenq-job-abc", got.auth)
	require.Equal(t, 3, got.r.ExitCode)
	require.Equal(t, worker.MeterGreenq, got.r.Meter)
	require.Equal(t, worker.SourceEstimate, got.r.Source)

	require.Nil(t, newMeterPost(func(k string) string { return map[string]string{worker.EnvJobToken: "t"}[k] }),
		"no post without the API's URL and the job id")
}

// A refusal (4xx) is final: meter says so and does not try again.
func TestMeterPostRefusedIsFinal(t *testing.T) {
	t.Parallel()
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, `{"error":{"code":"conflict","message":"posted already"}}`, http.StatusConflict)
	}))
	defer srv.Close()
	p := &meterPost{url: srv.URL + "/v1/jobs/j/energy", token: "greenq-job-x", client: srv.Client(), backoff: time.Millisecond}
	err := p.send([]byte(`{}`))
	require.ErrorContains(t, err, "posted already")
	require.Equal(t, 1, calls)
}
