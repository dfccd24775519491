package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's own series, in a registry of the Server so several
// servers (tests, replicas in one process) never collide.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_api_requests_total",
			Help: "HTTP requests served by the greenq API, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "greenq_api_request_duration_seconds",
			Help:    "Time to serve greenq API requests, by route pattern.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *metrics) observe(route string, status int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(took.Seconds())
}

func (s *Server) metricsHandler() http.Handler {
	g := prometheus.Gatherers{s.metrics.reg}
	if s.cfg.Gatherer != nil {
		g = append(g, s.cfg.Gatherer)
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: errLog{s}})
}

type errLog struct{ s *Server }

func (e errLog) Println(v ...any) { e.s.log.Error("gather metrics", "err", v) }
