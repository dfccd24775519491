package worker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus series, labelled by region so that
// several workers (greenq dev) share one registry.
type metrics struct {
	jobs       *prometheus.CounterVec
	energy     *prometheus.CounterVec
	gco2       *prometheus.CounterVec
	saved      *prometheus.CounterVec
	excess     *prometheus.CounterVec
	nvmlErrors *prometheus.CounterVec
	busy       *prometheus.GaugeVec
	gpus       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_jobs_total",
			Help: "Job runs ended on this worker, by outcome (succeeded, failed, cancelled, paused, abandoned).",
		}, []string{"region", "outcome"}),
		energy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_energy_kwh_total",
			Help: "Energy used by job runs (IT energy, before PUE), by GPU energy source.",
		}, []string{"region", "source"}),
		gco2: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_gco2_total",
			Help: "gCO2e emitted by finished jobs (receipts).",
		}, []string{"region"}),
		saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_saved_gco2_total",
			Help: "gCO2e saved by finished jobs against their run-now baseline (receipts); jobs that emitted more than their baseline count in greenq_worker_excess_gco2_total.",
		}, []string{"region"}),
		excess: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_excess_gco2_total",
			Help: "gCO2e finished jobs emitted above their run-now baseline (receipts with a negative saving); saved minus excess is the net saving.",
		}, []string{"region"}),
		nvmlErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_worker_nvml_read_errors_total",
			Help: "Failed NVML reads while metering jobs.",
		}, []string{"region"}),
		busy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "greenq_worker_busy_gpus",
			Help: "GPUs assigned to running jobs.",
		}, []string{"region", "worker"}),
		gpus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "greenq_worker_gpus",
			Help: "GPUs this worker offers.",
		}, []string{"region", "worker"}),
	}
	var err error
	m.jobs, err = register(reg, m.jobs)
	if err != nil {
		return nil, err
	}
	if m.energy, err = register(reg, m.energy); err != nil {
		return nil, err
	}
	if m.gco2, err = register(reg, m.gco2); err != nil {
		return nil, err
	}
	if m.saved, err = register(reg, m.saved); err != nil {
		return nil, err
	}
	if m.excess, err = register(reg, m.excess); err != nil {
		return nil, err
	}
	if m.nvmlErrors, err = register(reg, m.nvmlErrors); err != nil {
		return nil, err
	}
	if m.busy, err = register(reg, m.busy); err != nil {
		return nil, err
	}
	if m.gpus, err = register(reg, m.gpus); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same name (a second worker in the same process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
