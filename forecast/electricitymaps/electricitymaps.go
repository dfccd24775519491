package electricitymaps

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/internal/httpx"
)

// Name is the provider's name in config and in a series' Source.
const Name = "electricitymaps"

// Config configures the adapter.
type Config struct {
	// BaseURL is the API root, without /v3. Default
	// "https://api.electricitymap.org".
	BaseURL string
	// APIKey is sent as the auth-token header (required).
	APIKey string
	// SkipHistory fetches only the forecast, not the actuals before now.
	// Default false.
	SkipHistory bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider fetches an Electricity Maps zone's signal.
type Provider struct {
	cfg    Config
	base   string
	client *http.Client
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider; client nil means a client with a 30 s timeout.
func New(cfg Config, client *http.Client) (*Provider, error) {
	base, err := httpx.BaseURL("electricitymaps", cfg.BaseURL, "https://api.electricitymap.org")
	if err != nil {
		return nil, err
	}
	cfg.BaseURL = base.String()
	if cfg.APIKey == "" {
		return nil, greenq.Invalid("providers.electricitymaps.api_key", "is required")
	}
	cfg.Now = httpx.Now(cfg.Now)
	return &Provider{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), client: httpx.Client(client)}, nil
}

// Fetch returns zone's actuals in [from, now) (history for the last 24 h,
// past-range beyond) followed by the forecast. Actuals win where both cover
// an hour. When the actuals fail but the forecast arrives, Fetch returns the
// forecast with the history listed in Series.Missing.
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	if zone == "" {
		return forecast.Series{}, greenq.Invalid("zone", "electricitymaps zone is empty")
	}
	now := p.cfg.Now()
	var samples []forecast.Sample
	var missing []forecast.Gap
	if !p.cfg.SkipHistory && from.Before(now) {
		hist, err := p.history(ctx, zone, from, minTime(to, now), now)
		switch {
		case err != nil && ctx.Err() != nil:
			return forecast.Series{}, err
		case err != nil:
			// A free-tier key answers 401 on past-range, and history can
			// 404 or 5xx while the forecast is fine: keep the forecast and
			// say the history is missing.
			missing = append(missing, forecast.MissingPart(forecast.PartHistory, from, minTime(to, now), err))
		default:
			samples = append(samples, hist...)
		}
	}
	body, err := p.get(ctx, "/v3/carbon-intensity/forecast", url.Values{"zone": {zone}})
	if err != nil {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, err)
	}
	fc, err := parse(body, "forecast", forecast.KindForecast)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse forecast %s: %w", zone, err)
	}
	if len(fc) == 0 {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, forecast.ErrNoData)
	}
	samples = append(samples, fc...)
	pts, err := forecast.BuildPoints(samples, time.Hour)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse %s: %w", zone, err)
	}
	return forecast.Series{Zone: zone, Source: Name, Signal: forecast.SignalAverage, IssuedAt: now.UTC(), Points: pts, Missing: missing}, nil
}

// history fetches the actuals over [from, to): /history when from is within
// the last 24 h of now, /past-range beyond.
func (p *Provider) history(ctx context.Context, zone string, from, to, now time.Time) ([]forecast.Sample, error) {
	path, field, q := "/v3/carbon-intensity/history", "history", url.Values{"zone": {zone}}
	if now.Sub(from) > 24*time.Hour {
		path, field = "/v3/carbon-intensity/past-range", "data"
		q.Set("start", from.UTC().Format(time.RFC3339))
		q.Set("end", to.UTC().Format(time.RFC3339))
	}
	body, err := p.get(ctx, path, q)
	if err != nil {
		return nil, fmt.Errorf("fetch history %s: %w", zone, err)
	}
	hist, err := parse(body, field, forecast.KindActual)
	if err != nil {
		return nil, fmt.Errorf("parse history %s: %w", zone, err)
	}
	return hist, nil
}

func (p *Provider) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("auth-token", p.cfg.APIKey)
	return httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
}

type entry struct {
	CarbonIntensity *float64 `json:"carbonIntensity"`
	Datetime        string   `json:"datetime"`
}

// parse reads the array under field ("forecast", "history" or "data").
// An hour whose carbonIntensity is null is left out (a gap, not a zero).
func parse(body []byte, field string, kind forecast.PointKind) ([]forecast.Sample, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	raw, ok := top[field]
	if !ok || string(raw) == "null" {
		return nil, fmt.Errorf("answer has no %q: %w", field, forecast.ErrBadPayload)
	}
	var entries []entry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("decode %s: %v: %w", field, err, forecast.ErrBadPayload)
	}
	out := make([]forecast.Sample, 0, len(entries))
	for i, e := range entries {
		t, err := time.Parse(time.RFC3339, e.Datetime)
		if err != nil {
			return nil, fmt.Errorf("%s %d: datetime %q: %w", field, i, e.Datetime, forecast.ErrBadPayload)
		}
		if e.CarbonIntensity == nil {
			continue
		}
		out = append(out, forecast.Sample{Start: t.UTC(), Value: *e.CarbonIntensity, Kind: kind})
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
