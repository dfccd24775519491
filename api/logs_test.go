package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestLogsFromOffset(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(okJob))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var j greenq.Job
	res.json(t, &j)
	b.store.mu.Lock()
	b.store.logs[j.ID] = []byte("epoch 1\nepoch 2\n")
	b.store.mu.Unlock()

	tests := []struct {
		query string
		want  string
		next  string
	}{
		{"", "epoch 1\nepoch 2\n", "16"},
		{"?offset=0", "epoch 1\nepoch 2\n", "16"},
		{"?offset=8", "epoch 2\n", "16"},
		{"?offset=16", "", "16"},
	}
	for _, tt := range tests {
		res := b.do(t, "GET", "/v1/jobs/"+j.ID+"/logs"+tt.query, aliceToken, nil)
		require.Equal(t, http.StatusOK, res.Status, "%s: %s", tt.query, res.Body)
		require.Equal(t, tt.want, string(res.Body), tt.query)
		require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, tt.next, res.Header.Get(HeaderLogOffset), tt.query)
		require.Equal(t, "0", res.Header.Get(HeaderLogCut))
		require.Equal(t, "0", res.Header.Get(HeaderLogSkipped))
		require.Equal(t, "pending", res.Header.Get(HeaderJobState))
		require.Equal(t, "false", res.Header.Get(HeaderJobFinal))
	}

	res = b.do(t, "POST", "/v1/jobs/"+j.ID+"/cancel", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	res = b.do(t, "GET", "/v1/jobs/"+j.ID+"/logs?offset=16", aliceToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, "true", res.Header.Get(HeaderJobFinal), "a cancelled job's log is complete")
	require.Equal(t, "cancelled", res.Header.Get(HeaderJobState))
}

func TestLogsRefuseBadOffset(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	res := b.do(t, "POST", "/v1/jobs", aliceToken, body(okJob))
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var j greenq.Job
	res.json(t, &j)
	b.store.mu.Lock()
	b.store.logs[j.ID] = []byte("12345")
	b.store.mu.Unlock()
	for _, tc := range []struct {
		query string
		field string
	}{
		{"offset=-1", "offset"},
		{"offset=ten", "offset"},
		{"offset=1.5", "offset"},
		{"offset=", "offset"},
		{"offset=99999999999999999999", "offset"},
		{"offset=6", "offset"}, // past the end
		{"since=3", "since"},
	} {
		res := b.do(t, "GET", "/v1/jobs/"+j.ID+"/logs?"+tc.query, aliceToken, nil)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", tc.query, res.Body)
		code, field, _ := res.err(t)
		require.Equal(t, "invalid_argument", code, tc.query)
		require.Equal(t, tc.field, field, tc.query)
	}
	res = b.do(t, "GET", "/v1/jobs/"+j.ID+"/logs?offset=1", bobToken, nil)
	require.Equal(t, http.StatusNotFound, res.Status, "another tenant's job stays hidden")
}
