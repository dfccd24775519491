package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestSkewClockMeasuresOffset(t *testing.T) {
	t.Parallel()
	local := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tick := 0
	c := &skewClock{base: func() time.Time {
		tick++ // each reading 10 ms later: the round trip takes 10 ms
		return local.Add(time.Duration(tick) * 10 * time.Millisecond)
	}}
	server := local.Add(5 * time.Minute)
	off, err := c.measure(context.Background(), func(context.Context) (time.Time, error) { return server, nil })
	require.NoError(t, err)
	// The server answered at local+15ms (halfway between 10 and 20 ms).
	require.Equal(t, 5*time.Minute-15*time.Millisecond, off)
	require.Equal(t, local.Add(30*time.Millisecond).Add(off), c.now())

	_, err = c.measure(context.Background(), func(context.Context) (time.Time, error) { return time.Time{}, errors.New("down") })
	require.Error(t, err)
	require.Equal(t, off, time.Duration(c.offset.Load()), "a failed reading keeps the last offset")
}

func TestWorkerRefusesFarOffClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		skew   time.Duration
		refuse bool
	}{{0, false}, {5 * time.Second, false}, {-2 * time.Minute, true}, {10 * time.Minute, true}} {
		fs := newFakeStore()
		fs.skew = tc.skew
		w, err := New(Config{Region: "r", Meter: &EstimateMeter{}}, fs, asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
		require.NoError(t, err)
		err = w.syncClock(context.Background(), true)
		if tc.refuse {
			require.ErrorContains(t, err, "clock", "skew %s", tc.skew)
			continue
		}
		require.NoError(t, err)
		require.InDelta(t, float64(tc.skew), float64(w.clock.now().Sub(time.Now())), float64(time.Second), "the worker keeps the server's time")
	}
}

func TestRunTimesFollowServerClock(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.fs.skew = 3 * time.Minute
	require.NoError(t, b.w.syncClock(b.ctx, false))
	id := b.submit(t, greenq.Job{Command: []string{"true"}, Deadline: time.Now().Add(time.Hour)})
	require.NoError(t, waitErr(t, b.process(b.ctx, id)))
	j := b.fs.job(id)
	require.WithinDuration(t, time.Now().Add(3*time.Minute), j.Run.StartedAt, 30*time.Second,
		"run times are on the server's clock, so receipts look up the intensity where the job really ran")
}
