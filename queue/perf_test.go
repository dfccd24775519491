package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The JSON SubmitJSON hands back is what an HTTP API would have encoded,
// and what is stored.
func TestSubmitJSONIsTheEncoding(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, trials := range []int{1, 3} {
		sub, err := b.s.SubmitJSON(ctx, "alice", greenq.SubmitRequest{Name: "a<b>&c", Command: []string{"sh", "-c", "echo '<hi>' && true"},
			Deadline: "3h", DurationEstimateS: 600, Trials: trials, Tags: map[string]string{"k": "<v>"}})
		require.NoError(t, err)
		jobs, raw := sub.Jobs, sub.JSON
		require.False(t, sub.Existing)
		require.Len(t, raw, trials)
		for i, j := range jobs {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			require.NoError(t, enc.Encode(j))
			require.Equal(t, buf.String(), string(raw[i])+"\n")
			stored, err := b.rdb.HGet(ctx, b.s.k.job(j.ID), "json").Result()
			require.NoError(t, err)
			require.Equal(t, string(raw[i]), stored)
			got, err := b.s.Get(ctx, "alice", j.ID)
			require.NoError(t, err)
			require.Equal(t, j.Name, got.Name)
		}
	}
	// A repeat of an idempotent submission has no fresh encoding.
	req := greenq.SubmitRequest{Command: []string{"true"}, Deadline: "3h", Key: "k1"}
	first, err := b.s.SubmitJSON(ctx, "alice", req)
	require.NoError(t, err)
	require.Len(t, first.JSON, 1)
	again, err := b.s.SubmitJSON(ctx, "alice", req)
	require.NoError(t, err)
	require.Nil(t, again.JSON)
	require.True(t, again.Existing)
	require.Equal(t, first.Jobs[0].ID, again.Jobs[0].ID)
}

// A batch of due jobs is reserved in one call with the answers reserve
// gives one by one: due and reserved (again, with the same release
// number, while under way), not due, not releasable, past the deadline.
func TestReserveMany(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	due := b.submit(t, "a")
	b.plan(t, due.ID, b.regions[0], t0, false)
	urgent := b.submit(t, "a")
	b.plan(t, urgent.ID, b.regions[0], t0.Add(time.Hour), true)
	later := b.submit(t, "a")
	b.plan(t, later.ID, b.regions[0], t0.Add(time.Millisecond), false)
	late := b.submit(t, "a", func(r *greenq.SubmitRequest) { r.Deadline = "1h" })
	b.plan(t, late.ID, b.regions[0], t0, false)
	gone := b.submit(t, "a")
	b.plan(t, gone.ID, b.regions[0], t0, false)
	_, err := b.s.Cancel(ctx, "", gone.ID)
	require.NoError(t, err)
	// The cancel took it off the schedule; put a stale entry back.
	require.NoError(t, b.rdb.ZAdd(ctx, b.s.k.release(), redisZ(t0, gone.ID)).Err())

	ids := []string{due.ID, urgent.ID, later.ID, late.ID, gone.ID}
	res, err := b.s.reserveMany(ctx, ids, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, res, 5)
	require.NotNil(t, res[0].row)
	require.Equal(t, 1, res[0].row.rel)
	require.True(t, res[0].row.resv)
	require.NotNil(t, res[1].row)
	require.NotNil(t, res[2].row)
	require.ErrorIs(t, res[3].err, errPastDeadline)
	require.ErrorIs(t, res[4].err, errSkip)
	n, err := b.rdb.ZScore(ctx, b.s.k.release(), gone.ID).Result()
	require.Error(t, err, "the stale entry is gone, score %v", n)

	// A reservation under way keeps its release number; one not due at
	// now is not handed out, reserved or not (as reserve).
	res, err = b.s.reserveMany(ctx, []string{due.ID, later.ID}, t0)
	require.NoError(t, err)
	require.Equal(t, 1, res[0].row.rel)
	require.ErrorIs(t, res[1].err, errNotDue)

	fresh := b.submit(t, "a")
	b.plan(t, fresh.ID, b.regions[0], t0.Add(time.Millisecond), false)
	res, err = b.s.reserveMany(ctx, []string{fresh.ID}, t0)
	require.NoError(t, err)
	require.ErrorIs(t, res[0].err, errNotDue, "one millisecond early is not due")

	// A superseded fencing token reserves nothing.
	_, err = b.s.reserveMany(WithFence(ctx, 1<<40), []string{fresh.ID}, t0.Add(time.Hour))
	require.ErrorIs(t, err, ErrFenced)
}

func redisZ(at time.Time, id string) redis.Z {
	return redis.Z{Score: float64(ceilMilli(at)), Member: id}
}
