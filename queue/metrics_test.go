package queue

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// gauge returns the value of the series name{labels} from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestCollector(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(NewCollector(b.s, nil)))

	a := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	c := b.submit(t, "bob", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	b.plan(t, a.ID, b.regions[1], t0.Add(time.Hour), false)
	b.plan(t, c.ID, b.regions[1], t0.Add(time.Hour), false)
	b.force(t, c.ID, greenq.StateRunning)
	_, err := b.s.Cancel(ctx, "", c.ID)
	require.NoError(t, err)

	for state, want := range map[greenq.State]float64{greenq.StatePending: 1, greenq.StatePlanned: 1, greenq.StateCancelled: 1, greenq.StateRunning: 0} {
		got, ok := gauge(t, reg, "greenq_jobs", map[string]string{"state": string(state)})
		require.True(t, ok, state)
		require.Equal(t, want, got, state)
	}
	got, ok := gauge(t, reg, "greenq_jobs_by_region", map[string]string{"state": "planned", "region": b.regions[1]})
	require.True(t, ok)
	require.Equal(t, 1.0, got)
	got, ok = gauge(t, reg, "greenq_jobs_by_region", map[string]string{"state": "planned", "region": b.regions[0]})
	require.True(t, ok, "every region is reported, idle ones at 0")
	require.Equal(t, 0.0, got)
}
