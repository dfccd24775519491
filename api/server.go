package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/greenq/greenq"
)

// Token is one API bearer token as configured (greenq.yaml `tokens`). Only
// its SHA-256 is kept; HashToken computes it.
type Token struct {
	// Tenant owns every job submitted with this token.
	Tenant string `json:"tenant" yaml:"tenant"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string `json:"sha256" yaml:"sha256"`
	// Admin tokens see and cancel every tenant's jobs.
	Admin bool `json:"admin,omitempty" yaml:"admin,omitempty"`
}

// HashToken returns the hex SHA-256 of a bearer token, the form Token.SHA256
// stores.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LocalTenant is the tenant of every request when no tokens are configured
// (loopback clients only).
const LocalTenant = "local"

// Config configures the API server. The zero value serves loopback clients
// only.
type Config struct {
	// Tokens are the accepted bearer tokens. Without any, the API serves
	// only loopback clients as tenant "local" with admin rights (Open
	// reports it; the caller should say so at start-up). Note that a
	// reverse proxy on the same host makes every client look local.
	Tokens []Token
	// BodyLimit caps request bodies in bytes (413 beyond). Default 1 MiB.
	BodyLimit int64
	// RatePerSecond is each token's sustained request rate on /v1 (429 with
	// Retry-After beyond). Default 20; negative disables rate limiting.
	RatePerSecond float64
	// Burst is each token's burst on top of RatePerSecond. Default 40.
	Burst int
	// AllowedOrigins lists the web origins (scheme://host[:port]) other than
	// the server's own whose pages may call the API from a browser
	// (greenq.yaml api.allowed_origins), e.g. a notebook server's. Requests
	// from any other origin are refused (see guard). Default none.
	AllowedOrigins []string
	// RequestTimeout bounds each request's work (503 beyond). Default 30s.
	RequestTimeout time.Duration
	// ForecastMaxAge is how old a region's forecast may be before /readyz
	// reports not ready. Default 6h; negative disables the check.
	ForecastMaxAge time.Duration
	// Logger receives request logs at debug and failures at error. Default:
	// discard.
	Logger *slog.Logger
	// Gatherer supplies the rest of the process's metrics to /metrics
	// (e.g. prometheus.DefaultGatherer); the API's own metrics are added.
	// Default: the API's own only.
	Gatherer prometheus.Gatherer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultBodyLimit      = 1 << 20
	DefaultRatePerSecond  = 20
	DefaultBurst          = 40
	DefaultRequestTimeout = 30 * time.Second
	DefaultForecastMaxAge = 6 * time.Hour
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.BodyLimit <= 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ForecastMaxAge == 0 {
		c.ForecastMaxAge = DefaultForecastMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if err := validateOrigins(c.AllowedOrigins); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t.Tenant) == "" {
			return greenq.Invalid(fmt.Sprintf("tokens[%d].tenant", i), "is required")
		}
		b, err := hex.DecodeString(t.SHA256)
		if err != nil || len(b) != sha256.Size {
			return greenq.Invalid(fmt.Sprintf("tokens[%d].sha256", i), "must be 64 hex digits: the SHA-256 of the token (greenq token hash)")
		}
		if seen[strings.ToLower(t.SHA256)] {
			return greenq.Invalid(fmt.Sprintf("tokens[%d].sha256", i), "repeats an earlier token")
		}
		seen[strings.ToLower(t.SHA256)] = true
	}
	return nil
}

// Server is the HTTP API. Create it with New; serve Handler.
type Server struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	tokens  []token
	mux     *http.ServeMux
	handler http.Handler
	openapi []byte
	metrics *metrics

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

type token struct {
	sum    [sha256.Size]byte
	tenant string
	admin  bool
	id     string // rate-limit key
}

// New returns a server over store.
func New(cfg Config, store Store) (*Server, error) {
	if store == nil {
		return nil, errors.New("new api server: store is nil")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	cfg = cfg.WithDefaults()
	doc, err := openAPIJSON()
	if err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger.With("component", "api"),
		openapi:  doc,
		metrics:  newMetrics(),
		limiters: map[string]*rate.Limiter{},
	}
	for i, t := range cfg.Tokens {
		var tok token
		b, _ := hex.DecodeString(t.SHA256)
		copy(tok.sum[:], b)
		tok.tenant, tok.admin, tok.id = t.Tenant, t.Admin, fmt.Sprintf("token-%d", i)
		s.tokens = append(s.tokens, tok)
	}
	s.routes()
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Open reports whether the server runs without tokens, serving loopback
// clients only.
func (s *Server) Open() bool { return len(s.tokens) == 0 }

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns an http.Server for Handler on addr with connection
// timeouts set, so slow clients cannot hold connections open.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serve wraps the mux: request timeout, metrics and the request log.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	s.corsHeaders(w, r)
	switch err := s.guard(r); {
	case err != nil:
		drain(r.Body)
		s.writeError(rec, r, err)
	case r.Method == http.MethodOptions:
		s.preflight(rec, r)
	default:
		s.mux.ServeHTTP(rec, r)
	}
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	s.metrics.observe(route, rec.status, elapsed)
	s.log.LogAttrs(ctx, slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("route", route),
		slog.Int("status", rec.status), slog.Duration("took", elapsed))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// limiter returns the rate limiter of one token.
func (s *Server) limiter(key string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.RatePerSecond), s.cfg.Burst)
		s.limiters[key] = l
	}
	return l
}

// allow takes one request from key's budget, or returns how long to wait.
func (s *Server) allow(key string) (bool, time.Duration) {
	if s.cfg.RatePerSecond < 0 {
		return true, 0
	}
	now := s.cfg.Now()
	res := s.limiter(key).ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
