package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestDispatchFitsWorkers runs a 2-GPU and a 4-GPU worker in one region:
// 3-GPU jobs run on the 4-GPU worker, the 2-GPU one never starts them (nor
// fails them with "this worker has 2"), and a job asking more GPUs than any
// worker offers is refused at submit, naming gpus (exit 2 from the CLI,
// 400 over HTTP) with nothing stored.
func TestDispatchFitsWorkers(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	small := startWorker(t, "w2", cfg, "us", 2)
	big := startWorker(t, "w4", cfg, "us", 4)
	srv.API.waitReady(t, true, "us")
	waitFor(t, 30*time.Second, "both workers' heartbeats", func() bool { return srv.API.capacity()["us"] == 6 })

	// More than the largest worker: refused, nothing stored.
	code, out, errOut := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--gpus", "100", "--", "true")
	require.Equal(t, 2, code, "stdout %q stderr %q", out, errOut)
	require.Contains(t, errOut, "gpus")
	require.Contains(t, errOut, "at most 4")
	require.Empty(t, strings.TrimSpace(out), "no job id printed")
	st, raw, err := srv.API.do("POST", "/v1/jobs", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "10m", GPUs: 5})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, st, "%s", raw)
	var e struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
	require.Equal(t, "gpus", e.Error.Field, "%s", raw)
	// In a batch, all or none: the error names the entry.
	batch := map[string]any{"jobs": []greenq.SubmitRequest{
		{Command: []string{"true"}, Deadline: "10m", GPUs: 1},
		{Command: []string{"true"}, Deadline: "10m", GPUs: 8},
	}}
	st, raw, err = srv.API.do("POST", "/v1/jobs:batch", batch)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, st, "%s", raw)
	require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
	require.Equal(t, "jobs[1].gpus", e.Error.Field, "%s", raw)
	require.Empty(t, srv.API.jobs(t), "no refused job was stored")

	// 3 GPUs: only the 4-GPU worker can run them.
	var ids []string
	for range 3 {
		code, out, errOut = cli(t, "submit", "--api", srv.URL, "-o", "json", "--deadline", "10m", "--duration", "2s",
			"--gpus", "3", "--", "sh", "-c", `echo "gpus=$CUDA_VISIBLE_DEVICES"`)
		require.Equal(t, 0, code, "submit: %s", errOut)
		var j greenq.Job
		require.NoError(t, json.Unmarshal([]byte(out), &j), out)
		require.Equal(t, 3, j.GPUs)
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		j := srv.API.waitFinal(t, id, 60*time.Second)
		require.Equal(t, greenq.StateSucceeded, j.State, "error: %s", j.Error)
		require.Equal(t, "w4", j.Run.Worker)
		require.Equal(t, 1, j.Attempts)
		require.Contains(t, logsOf(srv.API, id), "gpus=0,1,2")
	}
	require.NotContains(t, small.Log(), "job started", "the 2-GPU worker started nothing")
	require.NotContains(t, small.Log(), "this worker has")
	require.Contains(t, big.Log(), "job started")

	// They went through the 3-GPU queue, one task each.
	insp := asynq.NewInspector(topology{Redis: r.URL()}.asynqOpt())
	defer insp.Close()
	done, err := insp.ListCompletedTasks(sizeQueue("us", 3))
	require.NoError(t, err)
	require.Len(t, done, len(ids))
	requireOneTaskPerJob(t, topology{Redis: r.URL()}, "us", len(ids))
}
