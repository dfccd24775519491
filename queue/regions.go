package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// RegionFacts is the server's region configuration as it shares it with
// workers through Redis: what a receipt needs to know about each region
// (PUE, prices and their time-of-use schedule, the embodied factor), so that
// a worker needs no copy of the configuration and every receipt uses the
// figures the planner used.
type RegionFacts struct {
	Regions     []greenq.Region `json:"regions"`
	PublishedAt time.Time       `json:"published_at"`
}

// Region returns the facts of the region named name.
func (f RegionFacts) Region(name string) (greenq.Region, bool) {
	for _, r := range f.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return greenq.Region{}, false
}

// PublishRegions shares the store's configured regions (Config.Regions:
// name, zone, provider, PUE, prices, embodied factor, largest worker) for
// workers to read with SharedRegions. The planner calls it every round; a
// store with no regions publishes nothing.
func (s *Store) PublishRegions(ctx context.Context) error {
	if len(s.regions) == 0 {
		return nil
	}
	f := RegionFacts{PublishedAt: s.now().UTC(), Regions: make([]greenq.Region, len(s.regions))}
	for i, r := range s.regions {
		r.Capacity, r.Workers = 0, 0
		f.Regions[i] = r
	}
	js, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("publish regions: encode: %w", err)
	}
	return redisErr("publish regions", s.rdb.Set(ctx, s.k.regionFacts(), js, 0).Err())
}

// SharedRegions returns the region facts the server published last
// (PublishRegions); ok is false when none has been published yet.
func (s *Store) SharedRegions(ctx context.Context) (RegionFacts, bool, error) {
	js, err := s.rdb.Get(ctx, s.k.regionFacts()).Bytes()
	if errors.Is(err, redis.Nil) {
		return RegionFacts{}, false, nil
	}
	if err != nil {
		return RegionFacts{}, false, redisErr("read region facts", err)
	}
	var f RegionFacts
	if err := json.Unmarshal(js, &f); err != nil {
		return RegionFacts{}, false, fmt.Errorf("decode region facts: %w", err)
	}
	return f, true, nil
}

// ConfiguredRegions returns the regions the store was configured with
// (Config.Regions), without live capacity.
func (s *Store) ConfiguredRegions() []greenq.Region {
	out := make([]greenq.Region, len(s.regions))
	copy(out, s.regions)
	return out
}
