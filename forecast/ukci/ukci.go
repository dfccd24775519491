package ukci

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
const Name = "ukci"

// fromLayout is the only {from} format the API accepts: no seconds.
const fromLayout = "2006-01-02T15:04Z"

// Config configures the adapter.
type Config struct {
	// BaseURL is the API root. Default "https://api.carbonintensity.org.uk".
	BaseURL string
	// MaxWindows caps the 48 h requests one Fetch makes to cover [from, to).
	// Default 4.
	MaxWindows int
	// Now is the clock (used for Retry-After dates). Default time.Now.
	Now func() time.Time
}

// Provider fetches GB intensity from the UK Carbon Intensity API.
type Provider struct {
	cfg    Config
	base   *url.URL
	client *http.Client
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider; client nil means a client with a 30 s timeout.
func New(cfg Config, client *http.Client) (*Provider, error) {
	if cfg.MaxWindows == 0 {
		cfg.MaxWindows = 4
	}
	if cfg.MaxWindows < 0 {
		return nil, greenq.Invalid("providers.ukci.max_windows", "must be positive, got %d", cfg.MaxWindows)
	}
	u, err := httpx.BaseURL("ukci", cfg.BaseURL, "https://api.carbonintensity.org.uk")
	if err != nil {
		return nil, err
	}
	cfg.Now = httpx.Now(cfg.Now)
	return &Provider{cfg: cfg, base: u, client: httpx.Client(client)}, nil
}

// regionID returns "" for national, or the regional id of zone.
func regionID(zone string) (string, error) {
	z := strings.ToUpper(strings.TrimSpace(zone))
	if z == "GB" || z == "" {
		return "", nil
	}
	z = strings.TrimPrefix(z, "GB-")
	if n, err := strconv.Atoi(z); err == nil && n >= 1 && n <= 17 {
		return z, nil
	}
	return "", greenq.Invalid("zone", "ukci zone %q is neither GB, GB-<region id> nor a region id 1–17", zone)
}

// Fetch returns the half-hourly series covering [from, to), in 48 h windows
// starting at from (rounded down to the half hour). Periods with a published
// actual are kind actual, the rest kind forecast.
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	id, err := regionID(zone)
	if err != nil {
		return forecast.Series{}, err
	}
	var samples []forecast.Sample
	start := from.UTC().Truncate(30 * time.Minute)
	for w := 0; w < p.cfg.MaxWindows && start.Before(to); w++ {
		path := "/intensity/" + start.Format(fromLayout) + "/fw48h"
		if id != "" {
			path = "/regional/intensity/" + start.Format(fromLayout) + "/fw48h/regionid/" + id
		}
		req, err := http.NewRequest(http.MethodGet, p.base.String()+path, nil)
		if err != nil {
			return forecast.Series{}, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		body, err := httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
		if err != nil {
			return forecast.Series{}, fmt.Errorf("fetch %s: %w", zone, err)
		}
		got, err := parse(body)
		if err != nil {
			return forecast.Series{}, fmt.Errorf("parse %s: %w", zone, err)
		}
		if len(got) == 0 {
			break
		}
		samples = append(samples, got...)
		last := got[len(got)-1]
		next := last.Start.Add(last.Duration)
		if !next.After(start) {
			break
		}
		start = next
	}
	if len(samples) == 0 {
		return forecast.Series{}, fmt.Errorf("fetch %s: %w", zone, forecast.ErrNoData)
	}
	pts, err := forecast.BuildPoints(samples, 30*time.Minute)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("parse %s: %w", zone, err)
	}
	return forecast.Series{Zone: zone, Source: Name, Signal: forecast.SignalAverage, IssuedAt: p.cfg.Now().UTC(), Points: pts}, nil
}

type intensity struct {
	Forecast *float64 `json:"forecast"`
	Actual   *float64 `json:"actual"`
}

// entry is a half-hour period (national) or a region holding periods: the
// regional answer's data is a region object or an array of them.
type entry struct {
	From      string          `json:"from"`
	To        string          `json:"to"`
	Intensity *intensity      `json:"intensity"`
	RegionID  *int            `json:"regionid"`
	Data      json.RawMessage `json:"data"`
}

// parse reads a national or regional fw48h answer.
func parse(body []byte) ([]forecast.Sample, error) {
	var top struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	if len(top.Data) == 0 || string(top.Data) == "null" {
		return nil, fmt.Errorf("no data field: %w", forecast.ErrBadPayload)
	}
	return parseData(top.Data, 0)
}

func parseData(raw json.RawMessage, depth int) ([]forecast.Sample, error) {
	if depth > 2 {
		return nil, fmt.Errorf("data nested too deep: %w", forecast.ErrBadPayload)
	}
	raw = bytes.TrimSpace(raw)
	var entries []entry
	switch {
	case len(raw) > 0 && raw[0] == '{':
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("decode data: %v: %w", err, forecast.ErrBadPayload)
		}
		entries = []entry{e}
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fmt.Errorf("decode data: %v: %w", err, forecast.ErrBadPayload)
		}
	default:
		return nil, fmt.Errorf("data is neither object nor array: %w", forecast.ErrBadPayload)
	}
	var out []forecast.Sample
	for i, e := range entries {
		if e.Intensity == nil {
			if len(e.Data) == 0 {
				return nil, fmt.Errorf("entry %d: neither a period nor a region: %w", i, forecast.ErrBadPayload)
			}
			inner, err := parseData(e.Data, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
			continue
		}
		s, err := period(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func period(e entry) (forecast.Sample, error) {
	from, err := parseTime(e.From)
	if err != nil {
		return forecast.Sample{}, err
	}
	to, err := parseTime(e.To)
	if err != nil {
		return forecast.Sample{}, err
	}
	if !to.After(from) {
		return forecast.Sample{}, fmt.Errorf("period %s ends before it starts: %w", e.From, forecast.ErrBadPayload)
	}
	s := forecast.Sample{Start: from, Duration: to.Sub(from), Kind: forecast.KindForecast}
	switch {
	case e.Intensity.Actual != nil:
		s.Value, s.Kind = *e.Intensity.Actual, forecast.KindActual
	case e.Intensity.Forecast != nil:
		s.Value = *e.Intensity.Forecast
	default:
		return forecast.Sample{}, fmt.Errorf("period %s has neither forecast nor actual: %w", e.From, forecast.ErrBadPayload)
	}
	return s, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(fromLayout, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time %q: %w", s, forecast.ErrBadPayload)
}
