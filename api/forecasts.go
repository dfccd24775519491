package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
)

// Bounds of GET /v1/forecasts/{region}?hours=H&past=P.
const (
	MaxForecastHours = 90 * 24
	MaxPastHours     = 30 * 24
)

func (s *Server) forecast(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	if err := onlyParams(q, "hours", "past"); err != nil {
		return err
	}
	hours, err := intParam(q.Get("hours"), "hours", 1, MaxForecastHours)
	if err != nil {
		return err
	}
	past, err := intParam(q.Get("past"), "past", 0, MaxPastHours)
	if err != nil {
		return err
	}
	region := r.PathValue("region")
	series, err := s.store.Series(r.Context(), region)
	if err != nil {
		return fmt.Errorf("read forecast of %s: %w", region, err)
	}
	if hours > 0 || past > 0 {
		if hours == 0 {
			hours = 48
		}
		now := s.cfg.Now()
		series = series.Slice(now.Add(-time.Duration(past)*time.Hour), now.Add(time.Duration(hours)*time.Hour))
	}
	series.Points = nonNil(series.Points)
	writeJSON(w, http.StatusOK, series)
	return nil
}

// intParam parses an optional integer query parameter in [lo, hi]; "" is 0.
func intParam(v, name string, lo, hi int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, greenq.Invalid(name, "must be an integer between %d and %d, got %q", lo, hi, v)
	}
	return n, nil
}

// RegionList is GET /v1/regions.
type RegionList struct {
	Regions []greenq.Region `json:"regions"`
}

func (s *Server) regions(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	regions, err := s.store.Regions(r.Context())
	if err != nil {
		return fmt.Errorf("list regions: %w", err)
	}
	writeJSON(w, http.StatusOK, RegionList{Regions: nonNil(regions)})
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is GET /readyz: "ready" with 200, or "not_ready" with 503 and
// the failing checks.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	out := Readiness{Status: "ready", Checks: map[string]string{}}
	fail := func(name, msg string) {
		out.Status = "not_ready"
		out.Checks[name] = msg
	}
	if err := s.store.Ping(ctx); err != nil {
		fail("redis", "unreachable: "+err.Error())
	} else {
		out.Checks["redis"] = "ok"
		if s.cfg.ForecastMaxAge > 0 {
			s.checkForecasts(r, out.Checks, fail)
		}
	}
	status := http.StatusOK
	if out.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}

func (s *Server) checkForecasts(r *http.Request, checks map[string]string, fail func(name, msg string)) {
	regions, err := s.store.Regions(r.Context())
	if err != nil {
		fail("regions", "cannot list: "+err.Error())
		return
	}
	now := s.cfg.Now()
	for _, reg := range regions {
		name := "forecast:" + reg.Name
		series, err := s.store.Series(r.Context(), reg.Name)
		switch {
		case err != nil:
			fail(name, "missing: "+err.Error())
		case series.IssuedAt.IsZero() || now.Sub(series.IssuedAt) > s.cfg.ForecastMaxAge:
			fail(name, fmt.Sprintf("stale: issued %s, older than %s", series.IssuedAt.UTC().Format(time.RFC3339), s.cfg.ForecastMaxAge))
		default:
			checks[name] = "ok"
		}
	}
}

// listAll is the ListOptions that page through everything p may see.
func listAll(p principal) queue.ListOptions {
	return queue.ListOptions{Tenant: p.scope(), Limit: 1000}
}
