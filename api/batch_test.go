package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestBatchSubmit covers POST /v1/jobs:batch: every job in request order,
// all or none, errors naming jobs[i].field.
func TestBatchSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(`{"jobs":[`+
		`{"name":"a","command":["a"],"deadline":"2h"},`+
		`{"name":"b","command":["b"],"deadline":"3h","trials":2},`+
		`{"name":"c","command":["c"],"deadline":"4h"}]}`))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var list JobList
	res.json(t, &list)
	var names []string
	for _, j := range list.Jobs {
		names = append(names, fmt.Sprintf("%s/%d", j.Name, j.Trial))
	}
	require.Equal(t, []string{"a/0", "b/1", "b/2", "c/0"}, names, "the answer keeps the request's order")
	require.Equal(t, 4, b.store.stored())

	for _, tc := range []struct{ name, body, field string }{
		{"one bad deadline", `{"jobs":[{"command":["a"],"deadline":"2h"},{"command":["b"],"deadline":"2h"},{"command":["c"],"deadline":"-1h"}]}`, "jobs[2].deadline"},
		{"one wrong type", `{"jobs":[{"command":["a"],"deadline":"2h"},{"command":["b"],"deadline":"2h","gpus":"2"}]}`, "jobs[1].gpus"},
		{"unknown field", `{"jobs":[{"command":["a"],"deadline":"2h","colour":"red"}]}`, "colour"},
		{"no jobs", `{}`, "jobs"},
		{"empty jobs", `{"jobs":[]}`, "jobs"},
		{"one job's fields", `{"command":["a"],"deadline":"2h"}`, "command"},
	} {
		res := b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(tc.body))
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", tc.name, res.Body)
		code, field, _ := res.err(t)
		require.Equal(t, "invalid_argument", code, tc.name)
		require.Contains(t, field, tc.field, tc.name)
		require.Equal(t, 4, b.store.stored(), "%s: nothing stored", tc.name)
	}

	res = b.do(t, "GET", "/v1/jobs:batch", aliceToken, nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.Status)
	require.Equal(t, "POST", res.Header.Get("Allow"))

	// 1001 jobs are refused whole.
	var many strings.Builder
	many.WriteString(`{"jobs":[`)
	for i := range MaxBatch + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`{"command":["x"],"deadline":"1h"}`)
	}
	many.WriteString("]}")
	res = b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(many.String()))
	require.Equal(t, http.StatusBadRequest, res.Status)
	require.Equal(t, 4, b.store.stored())
}

// TestBatchSubmitFailingPartWay: a job the store refuses after validation
// (here: too large for every worker) fails the batch naming it, and the
// batch's jobs already stored are cancelled, so none of it runs.
func TestBatchSubmitFailingPartWay(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.store.submitErr = func(req greenq.SubmitRequest) error {
		if req.GPUs > 8 {
			return greenq.Invalid("gpus", "%d is more than the largest worker of any allowed region offers", req.GPUs)
		}
		return nil
	}
	var jobs []string
	for i := range 40 {
		gpus := 1
		if i == 37 {
			gpus = 16
		}
		jobs = append(jobs, fmt.Sprintf(`{"name":"j%d","command":["x"],"deadline":"2h","gpus":%d}`, i, gpus))
	}
	res := b.do(t, "POST", "/v1/jobs:batch", aliceToken, body(`{"jobs":[`+strings.Join(jobs, ",")+`]}`))
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	_, field, _ := res.err(t)
	require.Equal(t, "jobs[37].gpus", field)
	b.store.mu.Lock()
	defer b.store.mu.Unlock()
	for id, j := range b.store.jobs {
		require.Equal(t, greenq.StateCancelled, j.State, "job %s of the failed batch", id)
	}
}

// TestNotFoundSaysWhatOnce: the error names the job once, without the
// verbs each layer wrapped it in ("cancel job x: cancel: job x: …").
func TestNotFoundSaysWhatOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/jobs/nope/cancel"}, {"GET", "/v1/jobs/nope"}, {"GET", "/v1/jobs/nope/logs"},
	} {
		res := b.do(t, tc.method, tc.path, aliceToken, nil)
		require.Equal(t, http.StatusNotFound, res.Status)
		_, _, msg := res.err(t)
		require.Equal(t, "job nope: not found", msg, tc.path)
	}
}
