package queue

import (
	"context"
	"time"
)

// ServerTime returns Redis's clock (TIME). Every greenq process shares one
// Redis, so its clock is the one all of them can agree on: workers measure
// their own clock's offset against it.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, redisErr("read server time", err)
	}
	return t, nil
}
