package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// A receipt written while its run's hours had only forecast intensities
// (greenq.Receipt.RestsOnForecast) is restated once the provider's actuals
// for those hours arrive. Finish files such jobs in a schedule by finish
// time; the server's restating pass (worker.Restater) reads them with
// RestateCandidates, rewrites each receipt with Restate and drops a job
// from the schedule once its receipt rests on actuals or it is too old to
// wait for them.

// markRestatable files j for restating when it is final with a receipt
// that rests on forecasts. Best effort: a job missed here keeps its
// forecast-based receipt, labelled so.
func (s *Store) markRestatable(ctx context.Context, j *greenq.Job) {
	if !j.State.Final() || j.Receipt == nil || !j.Receipt.RestsOnForecast() {
		return
	}
	at := s.now()
	if j.Run != nil && j.Run.FinishedAt != nil {
		at = *j.Run.FinishedAt
	}
	if err := s.rdb.ZAdd(ctx, s.k.restate(), redis.Z{Score: float64(at.UnixMilli()), Member: j.ID}).Err(); err != nil {
		s.log.Warn("file receipt for restating", "job", j.ID, "err", err)
	}
}

// RestateCandidates returns up to n jobs filed for restating that finished
// at or after since, oldest first, and forgets those that finished before
// since: their receipts keep the forecast they rest on.
func (s *Store) RestateCandidates(ctx context.Context, since time.Time, n int64) ([]*greenq.Job, error) {
	key := s.k.restate()
	cut := strconv.FormatInt(since.UnixMilli(), 10)
	if err := s.rdb.ZRemRangeByScore(ctx, key, "-inf", "("+cut).Err(); err != nil {
		return nil, redisErr("restate candidates", err)
	}
	ids, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: cut, Max: "+inf", Count: n}).Result()
	if err != nil {
		return nil, redisErr("restate candidates", err)
	}
	rows, err := s.loadMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("restate candidates: %w", err)
	}
	out := make([]*greenq.Job, 0, len(rows))
	found := map[string]bool{}
	for _, r := range rows {
		found[r.job.ID] = true
		out = append(out, r.job)
	}
	var gone []any
	for _, id := range ids {
		if !found[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err()
	}
	return out, nil
}

// Restate replaces the receipt of finished job id with what restate
// returns for the job as stored now; restate returns nil to leave it. The
// write is a compare-and-set, so a concurrent change is never lost. A job
// whose receipt no longer rests on forecasts leaves the restating
// schedule. It returns the job as stored.
func (s *Store) Restate(ctx context.Context, id string, restate func(j *greenq.Job) *greenq.Receipt) (*greenq.Job, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if !j.State.Final() || j.Receipt == nil {
			return errNoChange
		}
		rc := restate(j)
		if rc == nil {
			return errNoChange
		}
		j.Receipt = rc
		return nil
	})
	if errors.Is(err, greenq.ErrNotFound) {
		s.ForgetRestate(ctx, id)
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("restate: %w", err)
	}
	if r.job.Receipt == nil || !r.job.Receipt.RestsOnForecast() {
		s.ForgetRestate(ctx, id)
	}
	return r.job, nil
}

// ForgetRestate takes job id off the restating schedule.
func (s *Store) ForgetRestate(ctx context.Context, id string) {
	if err := s.rdb.ZRem(ctx, s.k.restate(), id).Err(); err != nil {
		s.log.Warn("unschedule restating", "job", id, "err", err)
	}
}
