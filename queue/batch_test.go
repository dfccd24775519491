package queue

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// storedKeys counts the keys under the bundle's prefix.
func storedKeys(t *testing.T, b *bundle) int {
	t.Helper()
	keys, err := b.rdb.Keys(context.Background(), b.prefix+":*").Result()
	require.NoError(t, err)
	return len(keys)
}

func TestSubmitManyAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		for i := range c.Regions {
			c.Regions[i].MaxGPUsPerWorker = 4
		}
	})
	ctx := context.Background()
	for _, r := range b.regions {
		require.NoError(t, b.s.PutSeries(ctx, hourly(r, 300, 40, 5)))
	}
	before := storedKeys(t, b)
	req := func(name string, edit ...func(*greenq.SubmitRequest)) greenq.SubmitRequest {
		r := greenq.SubmitRequest{Name: name, Command: []string{"true"}, Deadline: "20h", DurationEstimateS: 3600}
		for _, e := range edit {
			e(&r)
		}
		return r
	}

	// The third job needs more GPUs than any worker: the batch stores no job.
	_, err := b.s.SubmitMany(ctx, "alice", []greenq.SubmitRequest{
		req("a"), req("b", func(r *greenq.SubmitRequest) { r.Trials = 3 }), req("c", func(r *greenq.SubmitRequest) { r.GPUs = 8 }),
	})
	var be *BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, 2, be.Index)
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "gpus", ge.Field)
	jobs, _, err := b.s.List(ctx, ListOptions{})
	require.NoError(t, err)
	require.Empty(t, jobs, "a refused batch stores no job")
	require.Equal(t, before, storedKeys(t, b), "nor any index entry")

	// A batch that passes is stored whole, each job with a provisional plan
	// from the one planning call.
	reqs := []greenq.SubmitRequest{req("a", func(r *greenq.SubmitRequest) { r.Key = "k-a" }), req("b", func(r *greenq.SubmitRequest) { r.Trials = 3 })}
	subs, err := b.s.SubmitMany(ctx, "alice", reqs)
	require.NoError(t, err)
	require.Len(t, subs, 2)
	require.Len(t, subs[0].Jobs, 1)
	require.Len(t, subs[1].Jobs, 3)
	require.NotEmpty(t, subs[1].Jobs[0].Group)
	for _, sub := range subs {
		require.Len(t, sub.JSON, len(sub.Jobs))
		for _, j := range sub.Jobs {
			got := mustGet(t, b, j.ID)
			require.Equal(t, greenq.StatePending, got.State)
			require.NotNil(t, got.Plan)
			require.True(t, got.Plan.Provisional)
			require.Equal(t, t0.Add(5*time.Hour), got.Plan.Start, "the clean hour")
		}
	}
	group, _, err := b.s.List(ctx, ListOptions{Group: subs[1].Jobs[0].Group})
	require.NoError(t, err)
	require.Len(t, group, 3)

	// Retried with the same key and body: the first submission's job, no
	// new one; with another body under that key the batch is refused whole.
	again, err := b.s.SubmitMany(ctx, "alice", []greenq.SubmitRequest{reqs[0], req("d")})
	require.NoError(t, err)
	require.True(t, again[0].Existing)
	require.Equal(t, subs[0].Jobs[0].ID, again[0].Jobs[0].ID)
	jobs, _, err = b.s.List(ctx, ListOptions{})
	require.NoError(t, err)
	require.Len(t, jobs, 5)
	_, err = b.s.SubmitMany(ctx, "alice", []greenq.SubmitRequest{req("e"), req("other", func(r *greenq.SubmitRequest) { r.Key = "k-a" })})
	require.ErrorAs(t, err, &be)
	require.Equal(t, 1, be.Index)
	require.ErrorAs(t, err, &ge)
	require.Equal(t, greenq.CodeConflict, ge.Code)
	jobs, _, err = b.s.List(ctx, ListOptions{})
	require.NoError(t, err)
	require.Len(t, jobs, 5, "nothing of the refused batch")
	twice := func(r *greenq.SubmitRequest) { r.Key = "k-b" }
	_, err = b.s.SubmitMany(ctx, "alice", []greenq.SubmitRequest{req("f", twice), req("f", twice)})
	require.ErrorAs(t, err, &be)
	require.Equal(t, 1, be.Index)
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "key", ge.Field)
}
