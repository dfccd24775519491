package queue

import (
	"context"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenq/greenq"
)

// Collector exports the queue's state on each scrape: jobs by state (from
// the state indexes, cheap at any size), jobs by state and region for the
// jobs not yet finished, and each region's asynq queue depth.
type Collector struct {
	s       *Store
	insp    *asynq.Inspector
	timeout time.Duration
	// pending and active keep decoded jobs between scrapes, so a scrape
	// reads only versions and the records that changed.
	pending, active jobCache

	jobs       *prometheus.Desc
	jobsRegion *prometheus.Desc
	depth      *prometheus.Desc
}

// NewCollector returns a collector over s; insp, when not nil, adds queue
// depth. Register it on the server's registry.
func NewCollector(s *Store, insp *asynq.Inspector) *Collector {
	return &Collector{
		s: s, insp: insp, timeout: 5 * time.Second,
		jobs:       prometheus.NewDesc("greenq_jobs", "Jobs by state.", []string{"state"}, nil),
		jobsRegion: prometheus.NewDesc("greenq_jobs_by_region", "Unfinished jobs by state and region (planned or running there).", []string{"state", "region"}, nil),
		depth:      prometheus.NewDesc("greenq_queue_depth", "Tasks waiting or running on a region's asynq queues (every job size).", []string{"region"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.jobsRegion
	ch <- c.depth
}

// Collect implements prometheus.Collector. A Redis failure leaves the
// series out of this scrape rather than reporting zeros.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	pipe := c.s.rdb.Pipeline()
	cards := make([]interface{ Val() int64 }, len(greenq.States))
	for i, st := range greenq.States {
		cards[i] = pipe.ZCard(ctx, c.s.k.state(st))
	}
	if _, err := pipe.Exec(ctx); err == nil {
		for i, st := range greenq.States {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(cards[i].Val()), string(st))
		}
	}
	byRegion := map[[2]string]int{}
	for _, r := range c.s.regions {
		for _, st := range []greenq.State{greenq.StatePlanned, greenq.StateReleased, greenq.StateRunning} {
			byRegion[[2]string{string(st), r.Name}] = 0
		}
	}
	pending, err1 := c.pending.pending(ctx, c.s)
	active, err2 := c.active.active(ctx, c.s)
	if err1 == nil && err2 == nil {
		for _, j := range slices.Concat(pending, active) {
			region := ""
			switch {
			case j.State == greenq.StateRunning && j.Run != nil:
				region = j.Run.Region
			case j.Plan != nil && !j.Plan.Provisional:
				region = j.Plan.Region
			}
			if region != "" {
				byRegion[[2]string{string(j.State), region}]++
			}
		}
		for k, n := range byRegion {
			ch <- prometheus.MustNewConstMetric(c.jobsRegion, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if c.insp == nil {
		return
	}
	// A region's jobs are on one queue per job size (SizeQueue); a queue
	// that never had a task does not exist yet.
	names, err := c.insp.Queues()
	if err != nil {
		return
	}
	depth := map[string]int{}
	for _, q := range names {
		region, _, ok := ParseQueue(q)
		if !ok || !slices.Contains(c.s.names, region) {
			continue
		}
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			continue
		}
		depth[region] += info.Pending + info.Active + info.Retry + info.Scheduled
	}
	for _, r := range c.s.regions {
		if n, ok := depth[r.Name]; ok {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), r.Name)
		}
	}
}

var _ prometheus.Collector = (*Collector)(nil)
