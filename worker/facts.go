package worker

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
)

// Region facts: a receipt's PUE, prices and embodied factor are the
// server's region configuration, which the planner shares through Redis
// (queue.Store.PublishRegions), so that a worker started with nothing but
// --region writes the figures the plan used. A worker's own configuration
// (Config.PUE, Config.EmbodiedGCO2PerGPUHour) is used only while the server
// has shared none; where it disagrees with the server's, the worker says so
// once in its log and uses the server's.

// factsTTL is how long the worker reuses the region facts it read.
const factsTTL = 30 * time.Second

// factsSource is the part of a store that serves the shared region facts;
// a store without it leaves receipts to the worker's own configuration.
type factsSource interface {
	SharedRegions(ctx context.Context) (queue.RegionFacts, bool, error)
}

var _ factsSource = (*queue.Store)(nil)

// factsCache keeps the facts last read and what has been logged.
type factsCache struct {
	mu     sync.Mutex
	at     time.Time
	facts  map[string]greenq.Region
	logged map[string]bool // messages said once
}

// regionFacts returns the server's region facts by name, read at most
// factsTTL ago; nil when the server has shared none (receipts then use the
// worker's own configuration).
func (w *Worker) regionFacts(ctx context.Context) map[string]greenq.Region {
	c := &w.facts
	c.mu.Lock()
	defer c.mu.Unlock()
	now := w.cfg.Now()
	if !c.at.IsZero() && now.Sub(c.at) < factsTTL && !now.Before(c.at) {
		return c.facts
	}
	src, ok := w.store.(factsSource)
	if !ok {
		return nil
	}
	f, found, err := src.SharedRegions(ctx)
	switch {
	case err != nil:
		w.once(c, "read-error", func() {
			w.log.Warn("read the server's region facts; receipts use the last ones read, else this worker's own configuration", "err", err)
		})
		return c.facts
	case !found:
		w.once(c, "none", func() {
			w.log.Info("the server has not shared its region configuration yet: receipts use this worker's own (PUE 1 where it names none) until it does")
		})
		c.at = now
		return c.facts
	}
	facts := make(map[string]greenq.Region, len(f.Regions))
	for _, r := range f.Regions {
		facts[r.Name] = r
	}
	c.facts, c.at = facts, now
	w.checkOwnConfig(c, facts)
	return facts
}

// checkOwnConfig logs, once per region, where the worker's own
// configuration disagrees with the server's region facts, which win.
// Called with c.mu held.
func (w *Worker) checkOwnConfig(c *factsCache, facts map[string]greenq.Region) {
	for name, r := range facts {
		if p, ok := w.cfg.PUE[name]; ok && p > 0 && r.PUE > 0 && math.Abs(p-r.PUE) > 1e-9 {
			w.once(c, "pue/"+name, func() {
				w.log.Warn("this worker's config disagrees with the server's region configuration; receipts use the server's",
					"config_region", name, "field", "pue", "worker", p, "server", r.PUE)
			})
		}
		own := w.cfg.EmbodiedGCO2PerGPUHour
		if own != DefaultEmbodiedGCO2PerGPUHour && math.Abs(max(own, 0)-r.Embodied(own)) > 1e-9 && r.EmbodiedGCO2PerGPUHour != 0 {
			w.once(c, "embodied/"+name, func() {
				w.log.Warn("this worker's config disagrees with the server's region configuration; receipts use the server's",
					"config_region", name, "field", "embodied_gco2_per_gpu_hour", "worker", own, "server", r.Embodied(own))
			})
		}
	}
}

// once runs log the first time key is seen. Called with c.mu held.
func (w *Worker) once(c *factsCache, key string, log func()) {
	if c.logged == nil {
		c.logged = map[string]bool{}
	}
	if !c.logged[key] {
		c.logged[key] = true
		log()
	}
}
