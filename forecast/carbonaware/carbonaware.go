package carbonaware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/internal/httpx"
)

// Name is the provider's name in config and in a series' Source.
const Name = "carbonaware"

// Config configures the adapter.
type Config struct {
	// BaseURL is the WebAPI root. Default "http://127.0.0.1:8080".
	BaseURL string
	// Signal is what the SDK's data source publishes: marginal for WattTime
	// (the default), average for Electricity Maps.
	Signal forecast.Signal
	// WindowSize, when > 0, asks the SDK for rolling averages over that
	// many minutes instead of its native points. Default 0 (native).
	WindowSize int
	// SkipHistory fetches only the forecast, not /emissions/bylocations
	// for the part of [from, to) before now. Default false.
	SkipHistory bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider fetches a location's signal from a Carbon Aware SDK WebAPI.
type Provider struct {
	cfg    Config
	base   string
	client *http.Client
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider; client nil means a client with a 30 s timeout.
func New(cfg Config, client *http.Client) (*Provider, error) {
	base, err := httpx.BaseURL("carbonaware", cfg.BaseURL, "http://127.0.0.1:8080")
	if err != nil {
		return nil, err
	}
	cfg.BaseURL = base.String()
	if cfg.Signal == "" {
		cfg.Signal = forecast.SignalMarginal
	}
	if cfg.Signal != forecast.SignalAverage && cfg.Signal != forecast.SignalMarginal {
		return nil, greenq.Invalid("providers.carbonaware.signal", "%q is neither average nor marginal", cfg.Signal)
	}
	if cfg.WindowSize < 0 {
		return nil, greenq.Invalid("providers.carbonaware.window_size", "must be ≥ 0, got %d", cfg.WindowSize)
	}
	cfg.Now = httpx.Now(cfg.Now)
	return &Provider{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), client: httpx.Client(client)}, nil
}

// Fetch returns the location's actuals in [from, now) and its current
// forecast. The forecast is asked for whole (no dataStartAt/dataEndAt): the
// SDK rejects bounds outside the forecast it holds. When the actuals fail
// (an HTTP error, a malformed answer) but the forecast arrives, Fetch
// returns the forecast with the history listed in Series.Missing.
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	if zone == "" {
		return forecast.Series{}, greenq.Invalid("zone", "carbonaware location is empty")
	}
	now := p.cfg.Now()
	var samples []forecast.Sample
	var missing []forecast.Gap
	if !p.cfg.SkipHistory && from.Before(now) {
		hist, err := p.history(ctx, zone, from, minTime(to, now))
		switch {
		case err != nil && ctx.Err() != nil:
			return forecast.Series{}, err
		case err != nil:
			// The forecast may still come back: keep it, and say the
			// history is missing rather than fail the whole fetch.
			missing = append(missing, forecast.MissingPart(forecast.PartHistory, from, minTime(to, now), err))
		default:
			samples = append(samples, hist...)
		}
	}
	q := url.Values{"location": {zone}}
	if p.cfg.WindowSize > 0 {
		q.Set("windowSize", strconv.Itoa(p.cfg.WindowSize))
	}
	body, err := p.get(ctx, "/emissions/forecasts/current", q)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, err)
	}
	fc, issued, err := parseForecast(body)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse forecast %s: %w", zone, err)
	}
	if len(fc) == 0 {
		return forecast.Series{}, fmt.Errorf("fetch forecast %s: %w", zone, forecast.ErrNoData)
	}
	samples = append(samples, fc...)
	pts, err := forecast.BuildPoints(samples, 5*time.Minute)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse %s: %w", zone, err)
	}
	if issued.IsZero() {
		issued = now
	}
	return forecast.Series{Zone: zone, Source: Name, Signal: p.cfg.Signal, IssuedAt: issued.UTC(), Points: pts, Missing: missing}, nil
}

// history fetches /emissions/bylocations over [from, to).
func (p *Provider) history(ctx context.Context, zone string, from, to time.Time) ([]forecast.Sample, error) {
	q := url.Values{"location": {zone}, "time": {from.UTC().Format(time.RFC3339)}, "toTime": {to.UTC().Format(time.RFC3339)}}
	body, err := p.get(ctx, "/emissions/bylocations", q)
	if err != nil {
		return nil, fmt.Errorf("fetch history %s: %w", zone, err)
	}
	hist, err := parseEmissions(body)
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
	req.Header.Set("Accept", "application/json")
	return httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
}

type forecastDTO struct {
	GeneratedAt  string `json:"generatedAt"`
	ForecastData *[]struct {
		Timestamp string   `json:"timestamp"`
		Duration  *float64 `json:"duration"`
		Value     *float64 `json:"value"`
	} `json:"forecastData"`
}

// parseForecast reads /emissions/forecasts/current: an array with one
// forecast per location asked for.
func parseForecast(body []byte) ([]forecast.Sample, time.Time, error) {
	var fs []forecastDTO
	if err := json.Unmarshal(body, &fs); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	if fs == nil {
		return nil, time.Time{}, fmt.Errorf("answer is not an array: %w", forecast.ErrBadPayload)
	}
	var out []forecast.Sample
	var issued time.Time
	for i, f := range fs {
		if f.ForecastData == nil {
			return nil, time.Time{}, fmt.Errorf("forecast %d has no forecastData: %w", i, forecast.ErrBadPayload)
		}
		if f.GeneratedAt != "" && issued.IsZero() {
			if t, err := time.Parse(time.RFC3339, f.GeneratedAt); err == nil {
				issued = t
			}
		}
		for j, d := range *f.ForecastData {
			t, err := time.Parse(time.RFC3339, d.Timestamp)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("point %d: timestamp %q: %w", j, d.Timestamp, forecast.ErrBadPayload)
			}
			if d.Value == nil {
				return nil, time.Time{}, fmt.Errorf("point %d: no value: %w", j, forecast.ErrBadPayload)
			}
			var dur time.Duration
			if d.Duration != nil {
				if *d.Duration < 0 || *d.Duration > 7*24*60 {
					return nil, time.Time{}, fmt.Errorf("point %d: duration %v min: %w", j, *d.Duration, forecast.ErrBadPayload)
				}
				dur = time.Duration(*d.Duration * float64(time.Minute))
			}
			out = append(out, forecast.Sample{Start: t.UTC(), Duration: dur, Value: *d.Value, Kind: forecast.KindForecast})
		}
	}
	return out, issued, nil
}

// parseEmissions reads /emissions/bylocations: [{location, time, rating,
// duration}], duration a .NET TimeSpan ("hh:mm:ss") or minutes.
func parseEmissions(body []byte) ([]forecast.Sample, error) {
	var es []struct {
		Time     string          `json:"time"`
		Rating   *float64        `json:"rating"`
		Duration json.RawMessage `json:"duration"`
	}
	if err := json.Unmarshal(body, &es); err != nil {
		return nil, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	if es == nil {
		return nil, fmt.Errorf("answer is not an array: %w", forecast.ErrBadPayload)
	}
	out := make([]forecast.Sample, 0, len(es))
	for i, e := range es {
		t, err := time.Parse(time.RFC3339, e.Time)
		if err != nil {
			return nil, fmt.Errorf("point %d: time %q: %w", i, e.Time, forecast.ErrBadPayload)
		}
		if e.Rating == nil {
			return nil, fmt.Errorf("point %d: no rating: %w", i, forecast.ErrBadPayload)
		}
		dur, err := parseDuration(e.Duration)
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i, err)
		}
		out = append(out, forecast.Sample{Start: t.UTC(), Duration: dur, Value: *e.Rating, Kind: forecast.KindActual})
	}
	return out, nil
}

// parseDuration reads a TimeSpan "[d.]hh:mm:ss[.fffffff]", a number of
// minutes, or nothing (0).
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	bad := fmt.Errorf("duration %.40s: %w", raw, forecast.ErrBadPayload)
	if raw[0] != '"' {
		m, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || m < 0 || m > 7*24*60 {
			return 0, bad
		}
		return time.Duration(m * float64(time.Minute)), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, bad
	}
	var days int
	if dot := strings.Index(s, "."); dot >= 0 && dot < strings.Index(s, ":") {
		d, err := strconv.Atoi(s[:dot])
		if err != nil || d < 0 || d > 7 {
			return 0, bad
		}
		days, s = d, s[dot+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, bad
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
