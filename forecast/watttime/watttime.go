package watttime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/internal/httpx"
)

// Name is the provider's name in config and in a series' Source.
const Name = "watttime"

// LbsPerMWhToGPerKWh converts lbs CO2/MWh to g CO2/kWh.
const LbsPerMWhToGPerKWh = 0.453592

// tokenLife is how long a token is used: WattTime's last 30 minutes, and a
// minute's margin keeps a request from racing the expiry.
const tokenLife = 29 * time.Minute

// Config configures the adapter.
type Config struct {
	// BaseURL is the API root. Default "https://api.watttime.org".
	BaseURL string
	// Username and Password are the WattTime account (required).
	Username string
	Password string
	// SignalType is co2_moer (marginal, the default) or co2_aoer (average).
	SignalType string
	// HorizonHours is the forecast horizon asked for, 1–72. Default 72.
	HorizonHours int
	// History also fetches actuals from /v3/historical for the part of
	// [from, to) before now (needs a plan that includes it). Default false.
	History bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider fetches a WattTime region's signal.
type Provider struct {
	cfg    Config
	base   string
	signal forecast.Signal
	client *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider; client nil means a client with a 30 s timeout.
func New(cfg Config, client *http.Client) (*Provider, error) {
	base, err := httpx.BaseURL("watttime", cfg.BaseURL, "https://api.watttime.org")
	if err != nil {
		return nil, err
	}
	cfg.BaseURL = base.String()
	if cfg.Username == "" || cfg.Password == "" {
		return nil, greenq.Invalid("providers.watttime.username", "username and password are required")
	}
	if cfg.SignalType == "" {
		cfg.SignalType = "co2_moer"
	}
	var signal forecast.Signal
	switch cfg.SignalType {
	case "co2_moer":
		signal = forecast.SignalMarginal
	case "co2_aoer":
		signal = forecast.SignalAverage
	default:
		return nil, greenq.Invalid("providers.watttime.signal_type", "%q is neither co2_moer nor co2_aoer", cfg.SignalType)
	}
	if cfg.HorizonHours == 0 {
		cfg.HorizonHours = 72
	}
	if cfg.HorizonHours < 1 || cfg.HorizonHours > 72 {
		return nil, greenq.Invalid("providers.watttime.horizon_hours", "must be 1–72, got %d", cfg.HorizonHours)
	}
	cfg.Now = httpx.Now(cfg.Now)
	return &Provider{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), signal: signal, client: httpx.Client(client)}, nil
}

// Fetch returns the forecast issued now for region zone (e.g. CAISO_NORTH)
// and, with History, the actuals in [from, now). Points keep WattTime's
// 5-minute step.
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	if zone == "" {
		return forecast.Series{}, greenq.Invalid("zone", "watttime region is empty")
	}
	q := url.Values{"region": {zone}, "signal_type": {p.cfg.SignalType}, "horizon_hours": {strconv.Itoa(p.cfg.HorizonHours)}}
	body, err := p.get(ctx, "/v3/forecast", q)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, err)
	}
	fc, issued, err := parse(body, forecast.KindForecast)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse forecast %s: %w", zone, err)
	}
	var samples []forecast.Sample
	now := p.cfg.Now()
	if p.cfg.History && from.Before(now) {
		end := minTime(to, now)
		hq := url.Values{"region": {zone}, "signal_type": {p.cfg.SignalType},
			"start": {from.UTC().Format(time.RFC3339)}, "end": {end.UTC().Format(time.RFC3339)}}
		hb, err := p.get(ctx, "/v3/historical", hq)
		if err != nil {
			return forecast.Series{}, fmt.Errorf("fetch history %s: %w", zone, err)
		}
		hist, _, err := parse(hb, forecast.KindActual)
		if err != nil {
			return forecast.Series{}, fmt.Errorf("parse history %s: %w", zone, err)
		}
		samples = append(samples, hist...)
	}
	samples = append(samples, fc...)
	if len(fc) == 0 {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, forecast.ErrNoData)
	}
	pts, err := forecast.BuildPoints(samples, 5*time.Minute)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse %s: %w", zone, err)
	}
	if issued.IsZero() {
		issued = now
	}
	return forecast.Series{Zone: zone, Source: Name, Signal: p.signal, IssuedAt: issued.UTC(), Points: pts}, nil
}

// get performs an authenticated GET, logging in first when no fresh token
// is cached and once more when the API answers 401.
func (p *Provider) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := p.login(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodGet, p.base+path+"?"+q.Encode(), nil)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		body, err := httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
		var se *forecast.StatusError
		if attempt == 0 && errors.As(err, &se) && se.Code == http.StatusUnauthorized {
			continue
		}
		return body, err
	}
}

// login returns the cached token, or a new one when it has expired or force.
func (p *Provider) login(ctx context.Context, force bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	if !force && p.token != "" && now.Before(p.expires) {
		return p.token, nil
	}
	req, err := http.NewRequest(http.MethodGet, p.base+"/login", nil)
	if err != nil {
		return "", fmt.Errorf("build login: %w", err)
	}
	req.SetBasicAuth(p.cfg.Username, p.cfg.Password)
	body, err := httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	var r struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("login: decode: %v: %w", err, forecast.ErrBadPayload)
	}
	if r.Token == "" {
		return "", fmt.Errorf("login: no token in answer: %w", forecast.ErrBadPayload)
	}
	p.token, p.expires = r.Token, now.Add(tokenLife)
	return p.token, nil
}

type payload struct {
	Data *[]struct {
		PointTime string   `json:"point_time"`
		Value     *float64 `json:"value"`
	} `json:"data"`
	Meta *struct {
		Units       string `json:"units"`
		Period      int    `json:"data_point_period_seconds"`
		GeneratedAt string `json:"generated_at"`
	} `json:"meta"`
}

// parse reads a /v3/forecast or /v3/historical answer into samples in
// g/kWh, and returns generated_at when given.
func parse(body []byte, kind forecast.PointKind) ([]forecast.Sample, time.Time, error) {
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	if pl.Data == nil || pl.Meta == nil {
		return nil, time.Time{}, fmt.Errorf("answer lacks data or meta: %w", forecast.ErrBadPayload)
	}
	var factor float64
	switch pl.Meta.Units {
	case "lbs_co2_per_mwh":
		factor = LbsPerMWhToGPerKWh
	case "g_co2_per_kwh", "kg_co2_per_mwh":
		factor = 1
	default:
		return nil, time.Time{}, fmt.Errorf("units %q: %w", pl.Meta.Units, forecast.ErrBadPayload)
	}
	var period time.Duration
	if pl.Meta.Period > 0 && pl.Meta.Period <= 86400 {
		period = time.Duration(pl.Meta.Period) * time.Second
	}
	var issued time.Time
	if pl.Meta.GeneratedAt != "" {
		t, err := time.Parse(time.RFC3339, pl.Meta.GeneratedAt)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("generated_at %q: %w", pl.Meta.GeneratedAt, forecast.ErrBadPayload)
		}
		issued = t
	}
	out := make([]forecast.Sample, 0, len(*pl.Data))
	for i, d := range *pl.Data {
		t, err := time.Parse(time.RFC3339, d.PointTime)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("point %d: point_time %q: %w", i, d.PointTime, forecast.ErrBadPayload)
		}
		if d.Value == nil {
			return nil, time.Time{}, fmt.Errorf("point %d: no value: %w", i, forecast.ErrBadPayload)
		}
		out = append(out, forecast.Sample{Start: t.UTC(), Duration: period, Value: *d.Value * factor, Kind: kind})
	}
	return out, issued, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
