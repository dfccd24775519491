package entsoe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/internal/httpx"
)

// Name is the provider's name in config and in a series' Source.
const Name = "entsoe"

// Document types and process types of the requests.
const (
	docWindSolarForecast = "A69" // day-ahead generation forecasts for wind and solar
	docLoad              = "A65" // system total load (with processType A01: day-ahead forecast)
	docGenerationPerType = "A75" // actual generation per production type (processType A16: realised)
)

// Config configures the adapter. Every field but Token is optional.
type Config struct {
	// BaseURL is the API root; requests go to BaseURL + "/api". Default
	// "https://web-api.tp.entsoe.eu".
	BaseURL string
	// Token is the Transparency Platform security token, sent as the
	// securityToken query parameter (required; providers.entsoe.token or
	// GREENQ_ENTSOE_TOKEN).
	Token string
	// HistoryWindow is how much actual generation per type (A75) is fetched
	// before now: it gives the zone's recent mix meeting the residual load,
	// the calibration against actuals and the own forecaster's history.
	// Default 7 days.
	HistoryWindow time.Duration
	// SkipHistory fetches no actual generation: the residual load is then
	// met by FixedMix and the series has no actuals. Default false.
	SkipHistory bool
	// FixedMix is the share per production type (psrType) of the mix that
	// meets the residual load when no actual generation is available.
	// Default DefaultFixedMix (60 % gas, 40 % hard coal).
	FixedMix map[string]float64
	// Factors are the life-cycle emission factors per production type,
	// gCO2e/kWh. Default DefaultFactors (IPCC AR5 medians as Electricity
	// Maps uses them).
	Factors map[string]float64
	// SkipCalibration keeps the modelled intensity as it is. By default
	// the forecast is scaled by the ratio of actual to modelled intensity
	// over the hours of the last day both cover (at least 6, the ratio
	// clipped to 0.5–2), so the day-ahead series joins the actuals.
	SkipCalibration bool
	// Forecaster extends the series beyond the day-ahead horizon, from the
	// actuals and the day-ahead forecast before it. Default
	// forecast.Forecaster{}.
	Forecaster forecast.Forecaster
	// Blend is how long after the day-ahead horizon the own forecaster's
	// estimates are blended, linearly, with the day-ahead forecast of the
	// same hour one day earlier. Default 6h; negative: no blend.
	Blend time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider turns the ENTSO-E Transparency Platform's day-ahead wind and
// solar forecasts and load forecast for a bidding zone into a life-cycle
// carbon-intensity forecast.
type Provider struct {
	cfg    Config
	base   string
	client *http.Client
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider; client nil means a client with a 30 s timeout.
func New(cfg Config, client *http.Client) (*Provider, error) {
	base, err := httpx.BaseURL(Name, cfg.BaseURL, "https://web-api.tp.entsoe.eu")
	if err != nil {
		return nil, err
	}
	cfg.BaseURL = base.String()
	if cfg.Token == "" {
		return nil, greenq.Invalid("providers.entsoe.token", "is required (a Transparency Platform security token; or set GREENQ_ENTSOE_TOKEN)")
	}
	if cfg.HistoryWindow < 0 {
		return nil, greenq.Invalid("providers.entsoe.history_window", "must be ≥ 0, got %s", cfg.HistoryWindow)
	}
	if cfg.HistoryWindow == 0 {
		cfg.HistoryWindow = 7 * 24 * time.Hour
	}
	if cfg.Blend == 0 {
		cfg.Blend = 6 * time.Hour
	}
	if cfg.Factors == nil {
		cfg.Factors = DefaultFactors
	}
	if cfg.FixedMix == nil {
		cfg.FixedMix = DefaultFixedMix
	}
	for _, psr := range []string{PSRSolar, PSRWindOnshore, PSRWindOffshore, PSROther} {
		if _, ok := cfg.Factors[psr]; !ok {
			return nil, greenq.Invalid("providers.entsoe.factors", "no factor for production type %s", psr)
		}
	}
	if _, err := fixedEF(cfg.FixedMix, cfg.Factors); err != nil {
		return nil, greenq.Invalid("providers.entsoe.fixed_mix", "%v", err)
	}
	cfg.Now = httpx.Now(cfg.Now)
	return &Provider{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), client: httpx.Client(client)}, nil
}

// Fetch returns zone's hourly life-cycle intensity over [from, to): actuals
// from the generation per type (A75) before now, the day-ahead forecast as
// far as ENTSO-E publishes it (to the end of tomorrow, Brussels time, once
// the day-ahead is out around 18:00), and greenq's own forecaster beyond,
// blended into it. When the actual generation fails but the forecasts
// arrive, the series is the forecast on the fixed mix, with the history in
// Series.Missing. zone is a bidding-zone EIC or a name ZoneEIC knows.
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	code, ok := ZoneEIC(zone)
	if !ok {
		return forecast.Series{}, greenq.Invalid("zone", "%q is neither an ENTSO-E EIC nor a bidding zone greenq knows (e.g. DE-LU, FR, NL, 10Y1001A1001A82H)", zone)
	}
	now := p.cfg.Now()
	hour := now.Truncate(time.Hour)
	var gen generation
	var missing []forecast.Gap
	if !p.cfg.SkipHistory {
		ss, err := p.get(ctx, url.Values{"documentType": {docGenerationPerType}, "processType": {"A16"}, "in_Domain": {code}}, hour.Add(-p.cfg.HistoryWindow), hour.Add(time.Hour))
		switch {
		case err != nil && ctx.Err() != nil:
			return forecast.Series{}, fmt.Errorf("fetch generation %s: %w", zone, err)
		case err != nil:
			// The day-ahead forecast is what matters; keep it on the
			// fixed mix and say the actuals are missing.
			missing = append(missing, forecast.MissingPart(forecast.PartHistory, from, now, fmt.Errorf("fetch generation %s: %w", zone, err)))
		default:
			gen = newGeneration(ss)
		}
	}
	// The day-ahead documents from a day back (for the calibration) to the
	// end of what is asked for.
	daFrom, daTo := hour.Add(-24*time.Hour), to.Truncate(time.Hour).Add(time.Hour)
	vre, err := p.get(ctx, url.Values{"documentType": {docWindSolarForecast}, "processType": {"A01"}, "in_Domain": {code}}, daFrom, daTo)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("fetch wind and solar forecast %s: %w", zone, err)
	}
	loads, err := p.get(ctx, url.Values{"documentType": {docLoad}, "processType": {"A01"}, "outBiddingZone_Domain": {code}}, daFrom, daTo)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("fetch load forecast %s: %w", zone, err)
	}
	var load curve
	for _, s := range loads {
		load = append(load, s.blocks...)
	}
	sort.SliceStable(load, func(a, b int) bool { return load[a].start.Before(load[b].start) })
	if len(load) == 0 {
		return forecast.Series{}, fmt.Errorf("load forecast %s has no points: %w", zone, forecast.ErrNoData)
	}
	winds, solar := generation{}, curve{}
	for _, s := range vre {
		switch {
		case s.consumption:
		case s.psr == PSRSolar:
			solar = append(solar, s.blocks...)
		case s.psr == PSRWindOnshore || s.psr == PSRWindOffshore:
			winds[s.psr] = append(winds[s.psr], s.blocks...)
		}
	}
	for _, c := range []curve{solar, winds[PSRWindOnshore], winds[PSRWindOffshore]} {
		sort.SliceStable(c, func(a, b int) bool { return c[a].start.Before(c[b].start) })
	}

	m, err := gen.recentMix(hour.Add(-p.cfg.HistoryWindow), hour, p.cfg.Factors, p.cfg.FixedMix)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("residual mix %s: %w", zone, err)
	}
	model := func(h time.Time) (float64, bool) {
		l, ok := load.mean(h, h.Add(time.Hour))
		if !ok {
			return 0, false
		}
		var mw, g float64
		for psr, c := range map[string]curve{PSRSolar: solar, PSRWindOnshore: winds[PSRWindOnshore], PSRWindOffshore: winds[PSRWindOffshore]} {
			if v, ok := c.mean(h, h.Add(time.Hour)); ok && v > 0 {
				mw, g = mw+v, g+v*p.cfg.Factors[psr]
			}
		}
		return m.forecastIntensity(l, mw, g), true
	}

	// Actuals: the complete hours before now.
	var samples []forecast.Sample
	actual := map[time.Time]float64{}
	for h := from.Truncate(time.Hour); h.Add(time.Hour).Compare(now) <= 0 && h.Before(to); h = h.Add(time.Hour) {
		if v, ok := gen.intensity(h, h.Add(time.Hour), p.cfg.Factors); ok {
			samples = append(samples, forecast.Sample{Start: h, Duration: time.Hour, Value: v, Kind: forecast.KindActual})
			actual[h] = v
		}
	}
	scale := 1.0
	if !p.cfg.SkipCalibration {
		scale = p.calibration(gen, model, hour)
	}
	// The day-ahead forecast, from the first hour without an actual.
	loadStart, loadEnd := load.span()
	var last time.Time
	fc := map[time.Time]float64{}
	for h := maxTime(loadStart, from.Truncate(time.Hour)); h.Before(loadEnd) && h.Before(to); h = h.Add(time.Hour) {
		if _, ok := actual[h]; ok || h.Add(time.Hour).Compare(from) <= 0 {
			continue
		}
		v, ok := model(h)
		if !ok {
			continue
		}
		v *= scale
		samples = append(samples, forecast.Sample{Start: h, Duration: time.Hour, Value: v, Kind: forecast.KindForecast})
		fc[h] = v
		last = h.Add(time.Hour)
	}
	if len(fc) == 0 || !last.After(now) {
		return forecast.Series{}, fmt.Errorf("day-ahead forecast %s has no hour after %s: %w", zone, now.Format(time.RFC3339), forecast.ErrNoData)
	}
	samples = append(samples, p.beyond(gen, actual, fc, last, to, hour)...)
	pts, err := forecast.BuildPoints(samples, time.Hour)
	if err != nil {
		return forecast.Series{}, fmt.Errorf("build %s: %w", zone, err)
	}
	return forecast.Series{Zone: zone, Source: Name, Signal: forecast.SignalAverage, IssuedAt: now.UTC(), Points: pts, Missing: missing}, nil
}

// calibration is the ratio of actual to modelled intensity over the last
// day's hours both cover, 1 when fewer than 6 do, clipped to [0.5, 2].
func (p *Provider) calibration(gen generation, model func(time.Time) (float64, bool), hour time.Time) float64 {
	var a, m float64
	n := 0
	for h := hour.Add(-24 * time.Hour); h.Before(hour); h = h.Add(time.Hour) {
		av, ok := gen.intensity(h, h.Add(time.Hour), p.cfg.Factors)
		if !ok {
			continue
		}
		mv, ok := model(h)
		if !ok || mv <= 0 {
			continue
		}
		a, m, n = a+av, m+mv, n+1
	}
	if n < 6 || m <= 0 {
		return 1
	}
	return min(2, max(0.5, a/m))
}

// beyond returns the own forecaster's estimates over [last, to), from the
// actual history before now and the day-ahead forecast after it, the first
// Blend of them blended with the day-ahead value one day earlier.
func (p *Provider) beyond(gen generation, actual, fc map[time.Time]float64, last, to, hour time.Time) []forecast.Sample {
	if !to.After(last) {
		return nil
	}
	var hist forecast.Series
	hist.Signal = forecast.SignalAverage
	for h := hour.Add(-p.cfg.HistoryWindow); h.Before(last); h = h.Add(time.Hour) {
		v, ok := fc[h]
		if a, isActual := actual[h]; isActual {
			v, ok = a, true
		} else if !ok && h.Before(hour) {
			v, ok = gen.intensity(h, h.Add(time.Hour), p.cfg.Factors)
		}
		if ok {
			hist.Points = append(hist.Points, forecast.Point{Start: h, End: h.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindActual})
		}
	}
	est := p.cfg.Forecaster.Forecast(hist, last, to.Sub(last))
	out := make([]forecast.Sample, 0, len(est.Points))
	for _, pt := range est.Points {
		v := pt.GCO2PerKWh
		if lead := pt.Start.Sub(last); p.cfg.Blend > 0 && lead < p.cfg.Blend {
			if prev, ok := fc[pt.Start.Add(-24*time.Hour)]; ok {
				w := 1 - (float64(lead)+float64(pt.End.Sub(pt.Start))/2)/float64(p.cfg.Blend)
				v = w*prev + (1-w)*v
			}
		}
		out = append(out, forecast.Sample{Start: pt.Start, Duration: pt.End.Sub(pt.Start), Value: v, Kind: forecast.KindEstimate})
	}
	return out
}

// get asks for one document over [from, to) (whole hours, UTC).
func (p *Provider) get(ctx context.Context, q url.Values, from, to time.Time) ([]series, error) {
	q.Set("securityToken", p.cfg.Token)
	q.Set("periodStart", from.UTC().Format("200601021504"))
	q.Set("periodEnd", to.UTC().Format("200601021504"))
	req, err := http.NewRequest(http.MethodGet, p.base+"/api?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/xml")
	body, err := httpx.Get(ctx, p.client, req, Name, p.cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q.Get("documentType"), redact(err, p.cfg.Token))
	}
	ss, err := parseDocument(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q.Get("documentType"), err)
	}
	return ss, nil
}

// redact keeps the token out of transport errors, whose text holds the
// request's URL: the message is rewritten, and the error unwraps to the
// cause beneath the *url.Error (a context error stays visible to
// errors.Is).
func redact(err error, token string) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), token, "REDACTED"), err: ue.Err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
