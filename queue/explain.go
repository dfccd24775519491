package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
)

// Planning returns the store's planning adapter, made from Config.Policy.
func (s *Store) Planning() *planning.Planner { return s.plan }

// Explain returns job id (of tenant; "" for an admin) and its plan set
// against the alternatives the planner weighed when it made it
// (planning.Planner.Explain): the chosen option is the stored plan. A job
// not planned yet is planned at now without capacity, as at submit.
func (s *Store) Explain(ctx context.Context, tenant, id string, now time.Time) (*greenq.Job, planning.Explanation, error) {
	j, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, planning.Explanation{}, err
	}
	x, err := s.plan.Explain(ctx, now, j, s)
	if err != nil {
		return nil, planning.Explanation{}, fmt.Errorf("explain job %s: %w", id, err)
	}
	return j, x, nil
}
