package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// nopEnqueuer takes released tasks and drops them: the test starts the
// jobs itself.
type nopEnqueuer struct{}

func (nopEnqueuer) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return &asynq.TaskInfo{}, nil
}

// runningJobs stores n jobs in a real store and starts them, as a worker
// does.
func runningJobs(t *testing.T, n int) (*queue.Store, []string) {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Client(t)
	prefix := redistest.Unique("ape")
	t.Cleanup(func() {
		if keys, err := rdb.Keys(ctx, prefix+":*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	store, err := queue.NewStore(rdb, queue.Config{Prefix: prefix, Regions: []greenq.Region{{Name: "r1", Zone: "Z", PUE: 1}}})
	require.NoError(t, err)
	rel, err := queue.NewReleaser(store, queue.ReleaserConfig{Client: nopEnqueuer{}})
	require.NoError(t, err)
	var ids []string
	for range n {
		jobs, err := store.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", DurationEstimateS: 60})
		require.NoError(t, err)
		id := jobs[0].ID
		now := time.Now()
		_, err = store.SetPlans(ctx, map[string]greenq.Plan{id: {Region: "r1", Start: now, End: now.Add(time.Minute), Urgent: true, Reason: "test"}})
		require.NoError(t, err)
		_, err = rel.ReleaseDue(ctx)
		require.NoError(t, err)
		_, err = store.Start(ctx, id, greenq.Run{Region: "r1", Worker: "w", StartedAt: now})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return store, ids
}

func TestPostEnergyWithJobToken(t *testing.T) {
	store, ids := runningJobs(t, 2)
	a, b := ids[0], ids[1]
	ctx := context.Background()
	tokA, err := store.MintJobToken(ctx, a, time.Hour)
	require.NoError(t, err)
	srv, err := New(Config{Tokens: testTokens(), RatePerSecond: -1, Logger: testLogger(t)}, store)
	require.NoError(t, err)
	post := func(path, token, body string) (int, string, string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.RemoteAddr, req.Host = "10.0.0.7:40000", "greenq.example:8080"
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		res := response{Status: rec.Code, Body: rec.Body.Bytes()}
		if rec.Code >= 300 {
			code, field, _ := res.err(t)
			return rec.Code, code, field
		}
		return rec.Code, "", ""
	}
	reading := `{"gpu_energy_kwh":0.5,"cpu_energy_kwh":0.02,"ram_energy_kwh":0.001,"energy_source":"nvml","cpu_energy_source":"rapl","meter":"greenq-meter","gpus":[0]}`

	for _, c := range []struct {
		name, path, token, body string
		status                  int
		code, field             string
	}{
		{"another job's id", "/v1/jobs/" + b + "/energy", tokA, reading, 403, "forbidden", ""},
		{"no token", "/v1/jobs/" + a + "/energy", "", reading, 401, "unauthenticated", ""},
		{"an API token", "/v1/jobs/" + a + "/energy", aliceToken, reading, 401, "unauthenticated", ""},
		{"a forged job token", "/v1/jobs/" + a + "/energy", queue.JobTokenPrefix + "00", reading, 401, "unauthenticated", ""},
		{"listing jobs", "/v1/jobs", tokA, `{"command":["true"]}`, 403, "forbidden", ""},
		{"cancelling its own job", "/v1/jobs/" + a + "/cancel", tokA, "{}", 403, "forbidden", ""},
		{"a string for a number", "/v1/jobs/" + a + "/energy", tokA, `{"gpu_energy_kwh":"lots"}`, 400, "invalid_argument", "gpu_energy_kwh"},
		{"an unknown field", "/v1/jobs/" + a + "/energy", tokA, `{"gpu_kwh":1}`, 400, "invalid_argument", "gpu_kwh"},
		{"a negative figure", "/v1/jobs/" + a + "/energy", tokA, `{"cpu_energy_kwh":-2}`, 400, "invalid_argument", "cpu_energy_kwh"},
		{"an unknown source", "/v1/jobs/" + a + "/energy", tokA, `{"energy_source":"guess"}`, 400, "invalid_argument", "energy_source"},
		{"its own job", "/v1/jobs/" + a + "/energy", tokA, reading, 204, "", ""},
		{"a second reading", "/v1/jobs/" + a + "/energy", tokA, reading, 409, "conflict", ""},
	} {
		status, code, field := post(c.path, c.token, c.body)
		require.Equal(t, c.status, status, c.name)
		require.Equal(t, c.code, code, c.name)
		require.Equal(t, c.field, field, c.name)
	}
	got, err := store.TakeEnergy(ctx, a)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, 0.5, got.GPUKWh)
	require.Equal(t, greenq.EnergyNVML, got.Source)
	require.Nil(t, mustTake(t, store, b), "nothing was posted for job B")
}

func mustTake(t *testing.T, s *queue.Store, id string) *greenq.EnergyReading {
	t.Helper()
	r, err := s.TakeEnergy(context.Background(), id)
	require.NoError(t, err)
	return r
}
