package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// Store keeps each region's current series, shared by all server replicas.
type Store interface {
	PutSeries(ctx context.Context, s forecast.Series) error
	Series(ctx context.Context, region string) (forecast.Series, error)
}

// Region is one configured region and where its signal comes from.
type Region struct {
	// Name is the region's name (the series' Region).
	Name string
	// Zone is the grid zone the provider knows.
	Zone string
	// Provider names an entry of Config.Providers.
	Provider string
}

// Source labels of the fallbacks.
const (
	SourceNone       = "none"              // no signal: the planner treats carbon as flat
	SourceForecaster = "greenq-forecaster" // greenq's own forecaster
	// SuffixLastGood ends the source of a provider's last good series,
	// served while the provider is down ("electricitymaps:last-good").
	SuffixLastGood = ":last-good"
)

// Fallback reasons, as in greenq_forecast_fallback_total{reason}.
const (
	ReasonTimeout     = "timeout"
	ReasonRateLimited = "rate_limited"
	ReasonHTTP        = "http_error"
	ReasonGarbage     = "garbage"
	ReasonEmpty       = "empty"
	ReasonStale       = "stale"
	ReasonError       = "error"
)

// Config configures a Refresher.
type Config struct {
	// Regions to keep fresh (required).
	Regions []Region
	// Providers maps a provider name to its adapter (required for every
	// Region.Provider).
	Providers map[string]forecast.Provider
	// Schedules maps a provider name to a robfig/cron spec. Default
	// "@every 15m" for each provider.
	Schedules map[string]string
	// Store receives the series (required).
	Store Store
	// OnChange is called with the region's name after a series that
	// differs from the last one written lands in the Store. Optional.
	OnChange func(region string)
	// Registerer receives the metrics. Optional.
	Registerer prometheus.Registerer
	// Logger logs fallbacks once per change of state. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Lookback is how much history each fetch asks for. Default 24h.
	Lookback time.Duration
	// Horizon is how far ahead every written series reaches, the own
	// forecaster filling what the provider does not cover. Default 168h.
	Horizon time.Duration
	// TTL is how long a fetched series is reused before fetching again.
	// Default 10m.
	TTL time.Duration
	// StaleAfter is the age past which a provider's series (by IssuedAt,
	// or when it no longer covers now) is stale and not kept. Default 6h.
	StaleAfter time.Duration
	// HistoryWindow is how much past signal is kept per region for the own
	// forecaster. Default 15 days (it averages the last 14).
	HistoryWindow time.Duration
	// Timeout bounds one fetch; a provider still silent then is treated as
	// down (reason "timeout") even if it ignores its context. Default 30s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a provider failure,
	// doubling per consecutive failure, with jitter. Defaults 1m and 1h.
	MinBackoff, MaxBackoff time.Duration
	// Jitter returns a number in [0, 1) to spread back-offs. Default
	// math/rand/v2.Float64.
	Jitter func() float64
	// Forecaster extends and replaces provider series. Default zero value.
	Forecaster forecast.Forecaster
}

func (c *Config) setDefaults() error {
	if len(c.Regions) == 0 {
		return greenq.Invalid("regions", "at least one region is required")
	}
	if c.Store == nil {
		return greenq.Invalid("store", "is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Regions {
		if r.Name == "" {
			return greenq.Invalid(fmt.Sprintf("regions[%d].name", i), "is required")
		}
		if seen[r.Name] {
			return greenq.Invalid(fmt.Sprintf("regions[%d].name", i), "%q appears twice", r.Name)
		}
		seen[r.Name] = true
		if _, ok := c.Providers[r.Provider]; !ok {
			return greenq.Invalid(fmt.Sprintf("regions[%d].provider", i), "region %q names provider %q, which is not configured", r.Name, r.Provider)
		}
	}
	if c.Schedules == nil {
		c.Schedules = map[string]string{}
	}
	for name := range c.Providers {
		if c.Schedules[name] == "" {
			c.Schedules[name] = "@every 15m"
		}
		if _, err := cron.ParseStandard(c.Schedules[name]); err != nil {
			return greenq.Invalid("providers."+name+".schedule", "%q: %v", c.Schedules[name], err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Lookback, 24*time.Hour)
	def(&c.Horizon, 168*time.Hour)
	def(&c.TTL, 10*time.Minute)
	def(&c.StaleAfter, 6*time.Hour)
	def(&c.HistoryWindow, 15*24*time.Hour)
	def(&c.Timeout, 30*time.Second)
	def(&c.MinBackoff, time.Minute)
	def(&c.MaxBackoff, time.Hour)
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	return nil
}

// Refresher keeps the regions' series fresh in the Store.
type Refresher struct {
	cfg      Config
	fallback *prometheus.CounterVec
	age      *prometheus.GaugeVec

	mu        sync.Mutex
	regions   map[string]*regionState
	providers map[string]*providerState
}

type regionState struct {
	Region
	lastGood   forecast.Series // the provider's last valid series, unextended
	lastGoodAt time.Time
	fetchedAt  time.Time
	history    forecast.Series // past signal for the own forecaster
	written    *forecast.Series
	mode       string // "", "ok", "last-good", "forecaster", "none"
	reason     string
}

type providerState struct {
	failures     int
	backoffUntil time.Time
	reason       string
}

// New returns a Refresher; it starts nothing until Run.
func New(cfg Config) (*Refresher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r := &Refresher{
		cfg: cfg,
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "greenq_forecast_fallback_total",
			Help: "Refreshes that fell back from the provider's series, by region and reason.",
		}, []string{"region", "reason"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "greenq_forecast_age_seconds",
			Help: "Age of the newest provider data behind each region's series.",
		}, []string{"region"}),
		regions:   map[string]*regionState{},
		providers: map[string]*providerState{},
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.fallback, r.age} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	for _, reg := range cfg.Regions {
		r.regions[reg.Name] = &regionState{Region: reg}
	}
	for name := range cfg.Providers {
		r.providers[name] = &providerState{}
	}
	return r, nil
}

// Run seeds history from the Store, refreshes every region once, then on
// each provider's schedule until ctx is done. It returns ctx's error.
func (r *Refresher) Run(ctx context.Context) error {
	for _, reg := range r.cfg.Regions {
		if s, err := r.cfg.Store.Series(ctx, reg.Name); err == nil {
			r.seed(reg.Name, s)
		}
	}
	c := cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	names := make([]string, 0, len(r.cfg.Providers))
	for name := range r.cfg.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := c.AddFunc(r.cfg.Schedules[name], func() { r.RefreshProvider(ctx, name) }); err != nil {
			return fmt.Errorf("schedule %s: %w", name, err)
		}
	}
	for _, name := range names {
		r.RefreshProvider(ctx, name)
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done()
	return ctx.Err()
}

// seed takes a stored series' past, non-estimate points as history.
func (r *Refresher) seed(region string, s forecast.Series) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.regions[region]
	st.history = mergeHistory(st.history, s, r.cfg.Now(), r.cfg.HistoryWindow)
}

// RefreshProvider refreshes every region served by provider.
func (r *Refresher) RefreshProvider(ctx context.Context, provider string) {
	for _, reg := range r.cfg.Regions {
		if reg.Provider != provider {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if _, err := r.RefreshRegion(ctx, reg.Name); err != nil && !errors.Is(err, context.Canceled) {
			r.cfg.Logger.Error("write forecast", "component", "forecast-refresh", "region", reg.Name, "err", err)
		}
	}
}

// RefreshRegion fetches region's series (unless cached or backing off),
// falls back as needed, writes the result to the Store and returns it.
// The error is only the Store's; provider failures become fallbacks.
func (r *Refresher) RefreshRegion(ctx context.Context, region string) (forecast.Series, error) {
	r.mu.Lock()
	st, ok := r.regions[region]
	r.mu.Unlock()
	if !ok {
		return forecast.Series{}, fmt.Errorf("refresh %s: %w", region, greenq.ErrNotFound)
	}
	now := r.cfg.Now()
	r.mu.Lock()
	ps := r.providers[st.Provider]
	cached := st.mode == "ok" && now.Sub(st.fetchedAt) < r.cfg.TTL && !r.stale(st, now)
	backingOff := now.Before(ps.backoffUntil)
	r.mu.Unlock()

	var out forecast.Series
	switch {
	case cached:
		r.mu.Lock()
		out = r.extend(st, st.lastGood, now)
		r.mu.Unlock()
	case backingOff:
		r.mu.Lock()
		out = r.fallBack(st, ps.reason, now, false)
		r.mu.Unlock()
	default:
		out = r.fetch(ctx, st, ps, now)
	}
	return out, r.write(ctx, st, out)
}

func (r *Refresher) fetch(ctx context.Context, st *regionState, ps *providerState, now time.Time) forecast.Series {
	s, err := r.fetchWithin(ctx, st, now)
	reason := ""
	switch {
	case err != nil:
		reason = classify(err)
	case s.Validate() != nil:
		reason, err = ReasonGarbage, s.Validate()
	case len(s.Points) == 0:
		reason, err = ReasonEmpty, forecast.ErrNoData
	case !s.End().After(now) || (!s.IssuedAt.IsZero() && now.Sub(s.IssuedAt) > r.cfg.StaleAfter):
		reason, err = ReasonStale, fmt.Errorf("series ends %s, issued %s", s.End().Format(time.RFC3339), s.IssuedAt.Format(time.RFC3339))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason != "" {
		if ctx.Err() != nil {
			// Shutting down: not the provider's fault.
			return r.fallBack(st, ps.reason, now, false)
		}
		ps.failures++
		ps.reason = reason
		wait := r.cfg.MinBackoff << min(ps.failures-1, 20)
		if wait > r.cfg.MaxBackoff || wait <= 0 {
			wait = r.cfg.MaxBackoff
		}
		// Equal jitter: at least half the back-off, so retries spread out
		// without hammering the provider.
		wait = wait/2 + time.Duration(r.cfg.Jitter()*float64(wait/2))
		var rl *forecast.RateLimitError
		if errors.As(err, &rl) && rl.RetryAfter > wait {
			wait = rl.RetryAfter
		}
		ps.backoffUntil = now.Add(wait)
		r.cfg.Logger.Debug("forecast fetch failed", "component", "forecast-refresh", "region", st.Name, "provider", st.Provider, "reason", reason, "retry_in", wait, "err", err)
		return r.fallBack(st, reason, now, true)
	}
	ps.failures, ps.backoffUntil, ps.reason = 0, time.Time{}, ""
	s.Region, s.Zone = st.Name, st.Zone
	st.lastGood, st.lastGoodAt, st.fetchedAt = s, now, now
	st.history = mergeHistory(st.history, s, now, r.cfg.HistoryWindow)
	r.setMode(st, "ok", "")
	r.age.WithLabelValues(st.Name).Set(ageSeconds(s, now))
	return r.extend(st, s, now)
}

// fetchWithin asks st's provider for its series and waits at most Timeout
// for the answer. A provider that ignores its context's deadline is left
// to finish on its own, its late answer dropped, so that one hung provider
// cannot hold up the fallback (nor, as cron skips a provider's run while
// the last one is still going, every later refresh of its regions).
func (r *Refresher) fetchWithin(ctx context.Context, st *regionState, now time.Time) (forecast.Series, error) {
	type answer struct {
		s   forecast.Series
		err error
	}
	fctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	got := make(chan answer, 1) // the late answer of an abandoned fetch must not block
	p := r.cfg.Providers[st.Provider]
	go func() {
		s, err := p.Fetch(fctx, st.Zone, now.Add(-r.cfg.Lookback), now.Add(r.cfg.Horizon))
		got <- answer{s, err}
	}()
	select {
	case a := <-got:
		return a.s, a.err
	case <-fctx.Done():
		select {
		case a := <-got: // answered just in time
			return a.s, a.err
		default:
		}
		return forecast.Series{}, fmt.Errorf("fetch %s from %s: no answer within %s: %w", st.Zone, st.Provider, r.cfg.Timeout, fctx.Err())
	}
}

// stale reports whether the last good series can no longer serve.
func (r *Refresher) stale(st *regionState, now time.Time) bool {
	if len(st.lastGood.Points) == 0 || !st.lastGood.End().After(now) {
		return true
	}
	issued := st.lastGood.IssuedAt
	if issued.IsZero() {
		issued = st.lastGoodAt
	}
	return now.Sub(issued) > r.cfg.StaleAfter
}

// fallBack picks the best fallback; count says whether this was a failed
// fetch (counted in the metric) rather than a wait during back-off.
// Called with r.mu held.
func (r *Refresher) fallBack(st *regionState, reason string, now time.Time, count bool) forecast.Series {
	if reason == "" {
		reason = ReasonError
	}
	if count {
		r.fallback.WithLabelValues(st.Name, reason).Inc()
	}
	if !st.lastGoodAt.IsZero() {
		r.age.WithLabelValues(st.Name).Set(ageSeconds(st.lastGood, now))
	}
	if !r.stale(st, now) {
		r.setMode(st, "last-good", reason)
		s := st.lastGood
		s.Source = st.lastGood.Source + SuffixLastGood
		return r.extend(st, s, now)
	}
	step := r.cfg.Forecaster.Step
	if step <= 0 {
		step = time.Hour
	}
	from := now.Truncate(step)
	hist := st.history
	hist.Region, hist.Zone = st.Name, st.Zone
	fc := r.cfg.Forecaster.Forecast(hist, from, now.Add(r.cfg.Horizon).Sub(from))
	if len(fc.Points) > 0 {
		r.setMode(st, "forecaster", reason)
		past := hist.Slice(now.Add(-r.cfg.Lookback), from)
		for len(past.Points) > 0 && past.Points[len(past.Points)-1].End.After(from) {
			past.Points = past.Points[:len(past.Points)-1]
		}
		out := forecast.Splice(past, fc.Points)
		out.Source = fmt.Sprintf("%s (%s down)", SourceForecaster, st.Provider)
		out.IssuedAt = now.UTC()
		out.Signal = signalOf(st)
		return out
	}
	r.setMode(st, "none", reason)
	return forecast.Series{Region: st.Name, Zone: st.Zone, Source: SourceNone, Signal: signalOf(st), IssuedAt: now.UTC()}
}

func signalOf(st *regionState) forecast.Signal {
	for _, s := range []forecast.Signal{st.lastGood.Signal, st.history.Signal} {
		if s != "" {
			return s
		}
	}
	return forecast.SignalAverage
}

// extend fills [s.End(), now+Horizon) with the own forecaster's estimates,
// over the region's history and s's own points. Called with r.mu held.
func (r *Refresher) extend(st *regionState, s forecast.Series, now time.Time) forecast.Series {
	s.Region, s.Zone = st.Name, st.Zone
	end := now.Add(r.cfg.Horizon)
	if !s.End().Before(end) {
		return s
	}
	basis := mergeHistory(st.history, s, s.End(), r.cfg.HistoryWindow+r.cfg.Horizon)
	basis.Signal = s.Signal
	fc := r.cfg.Forecaster.Forecast(basis, s.End(), end.Sub(s.End()))
	return forecast.Splice(s, fc.Points)
}

// setMode logs a change of fallback state once. Called with r.mu held.
func (r *Refresher) setMode(st *regionState, mode, reason string) {
	if st.mode == mode && st.reason == reason {
		return
	}
	log := r.cfg.Logger.With("component", "forecast-refresh", "region", st.Name, "provider", st.Provider)
	switch {
	case mode == "ok" && st.mode != "":
		log.Info("forecast provider recovered", "was", st.mode, "reason_was", st.reason)
	case mode != "ok":
		log.Warn("forecast fallback", "mode", mode, "reason", reason, "was", st.mode)
	}
	st.mode, st.reason = mode, reason
}

// write stores out and calls OnChange when it differs from the last write.
func (r *Refresher) write(ctx context.Context, st *regionState, out forecast.Series) error {
	r.mu.Lock()
	same := st.written != nil && sameSeries(*st.written, out)
	r.mu.Unlock()
	if same {
		return nil
	}
	if err := r.cfg.Store.PutSeries(ctx, out); err != nil {
		return fmt.Errorf("store %s: %w", st.Name, err)
	}
	r.mu.Lock()
	st.written = &out
	r.mu.Unlock()
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(st.Name)
	}
	return nil
}

// sameSeries compares what the planner reads: source, signal and points.
func sameSeries(a, b forecast.Series) bool {
	return a.Source == b.Source && a.Signal == b.Signal && len(a.Points) == len(b.Points) && reflect.DeepEqual(a.Points, b.Points)
}

// mergeHistory adds s's non-estimate points that end by until to h, the new
// points replacing old ones they overlap, and drops what is older than
// window before until.
func mergeHistory(h, s forecast.Series, until time.Time, window time.Duration) forecast.Series {
	var add []forecast.Point
	for _, p := range s.Points {
		if p.Kind != forecast.KindEstimate && !p.End.After(until) {
			add = append(add, p)
		}
	}
	if h.Signal == "" {
		h.Signal = s.Signal
	}
	if len(add) == 0 {
		return h
	}
	keep := make([]forecast.Point, 0, len(h.Points)+len(add))
	j := 0
	for _, p := range h.Points {
		for j < len(add) && !add[j].End.After(p.Start) {
			j++
		}
		if j < len(add) && add[j].Start.Before(p.End) {
			continue // overlapped by a newer point
		}
		keep = append(keep, p)
	}
	keep = append(keep, add...)
	sort.SliceStable(keep, func(a, b int) bool { return keep[a].Start.Before(keep[b].Start) })
	cut := until.Add(-window)
	i := sort.Search(len(keep), func(i int) bool { return keep[i].End.After(cut) })
	h.Points = slices.Clip(keep[i:])
	return h
}

func classify(err error) string {
	var rl *forecast.RateLimitError
	var se *forecast.StatusError
	switch {
	case errors.As(err, &rl):
		return ReasonRateLimited
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.As(err, &se):
		return ReasonHTTP
	case errors.Is(err, forecast.ErrBadPayload):
		return ReasonGarbage
	case errors.Is(err, forecast.ErrNoData):
		return ReasonEmpty
	}
	return ReasonError
}

func ageSeconds(s forecast.Series, now time.Time) float64 {
	if s.IssuedAt.IsZero() {
		return math.NaN()
	}
	return math.Max(0, now.Sub(s.IssuedAt).Seconds())
}
