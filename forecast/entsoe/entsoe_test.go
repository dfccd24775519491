package entsoe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/forecasttest"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

// routes answers each document type with its payload.
func routes(t *testing.T, a75, a69, a65 string) map[string]string {
	return map[string]string{
		"/api?documentType=A75": read(t, a75),
		"/api?documentType=A69": read(t, a69),
		"/api?documentType=A65": read(t, a65),
	}
}

func newFixtureProvider(t *testing.T, base string, mod func(*Config)) *Provider {
	t.Helper()
	cfg := Config{BaseURL: base, Token: "tok", Now: func() time.Time { return fixtureNow }}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg, nil)
	require.NoError(t, err)
	return p
}

func checkRequest(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.URL.Path != "/api":
		return "path is not /api"
	case q.Get("securityToken") != "tok":
		return "no securityToken"
	case len(q.Get("periodStart")) != 12 || len(q.Get("periodEnd")) != 12:
		return "periodStart/periodEnd are not yyyyMMddHHmm"
	}
	switch q.Get("documentType") {
	case "A75":
		if q.Get("processType") != "A16" || q.Get("in_Domain") != frEIC {
			return "A75 needs processType A16 and in_Domain"
		}
	case "A69":
		if q.Get("processType") != "A01" || q.Get("in_Domain") != frEIC {
			return "A69 needs processType A01 and in_Domain"
		}
	case "A65":
		if q.Get("processType") != "A01" || q.Get("outBiddingZone_Domain") != frEIC {
			return "A65 needs processType A01 and outBiddingZone_Domain"
		}
	default:
		return "unexpected documentType " + q.Get("documentType")
	}
	return ""
}

// The expected values are computed by hand from the CSV the payloads were
// written from (testdata/README.md shows the sums): the actual hour with
// the default factors, and the day-ahead hour through the residual model.
var (
	actualAt   = time.Date(2019, 12, 24, 12, 0, 0, 0, time.UTC)
	actualWant = 34.1033 // Σ MW × AR5 factor / Σ MW at 12:00Z
	aheadAt    = time.Date(2019, 12, 24, 20, 0, 0, 0, time.UTC)
	aheadWant  = 36.5570 // residual model × calibration 0.96626
	nightAt    = time.Date(2019, 12, 25, 3, 0, 0, 0, time.UTC)
	nightWant  = 14.9379 // residual below the baseload: no dispatchable
)

func TestProviderSuite(t *testing.T) {
	t.Parallel()
	forecasttest.RunProviderSuite(t, func(base string) forecast.Provider {
		return newFixtureProvider(t, base, nil)
	}, forecasttest.Fixture{
		Zone: "FR", From: fixtureNow.Add(-24 * time.Hour), To: fixtureNow.Add(72 * time.Hour),
		OK:      routes(t, "a75.xml", "a69.xml", "a65.xml"),
		Empty:   routes(t, "empty.xml", "empty.xml", "empty.xml"),
		History: []string{"/api?documentType=A75"},
		Signal:  forecast.SignalAverage, MinPoints: 95,
		Values: map[time.Time]float64{actualAt: actualWant, aheadAt: aheadWant, nightAt: nightWant},
		Check:  checkRequest,
	})
}

// TestSeriesShape: actuals before now, the day-ahead forecast to the end of
// 12-25 Brussels time, then the own forecaster's estimates to the end asked
// for, blended at the seam.
func TestSeriesShape(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(fixtureServer(t, routes(t, "a75.xml", "a69.xml", "a65.xml")))
	defer srv.Close()
	from, to := fixtureNow.Add(-24*time.Hour), fixtureNow.Add(72*time.Hour)
	s, err := newFixtureProvider(t, srv.URL, nil).Fetch(context.Background(), "FR", from, to)
	require.NoError(t, err)
	require.NoError(t, s.Validate())
	require.Equal(t, Name, s.Source)
	require.Empty(t, s.Missing)
	seam := time.Date(2019, 12, 25, 23, 0, 0, 0, time.UTC)
	for _, p := range s.Points {
		require.Equal(t, time.Hour, p.End.Sub(p.Start))
		switch {
		case !p.End.After(fixtureNow):
			require.Equal(t, forecast.KindActual, p.Kind, p.Start)
		case p.Start.Before(seam):
			require.Equal(t, forecast.KindForecast, p.Kind, p.Start)
		default:
			require.Equal(t, forecast.KindEstimate, p.Kind, p.Start)
		}
	}
	require.True(t, s.Points[0].Start.Equal(from.Truncate(time.Hour)))
	require.False(t, s.End().Before(to), "reaches what was asked for")
	// The first estimate is mostly the day-ahead value a day earlier.
	first, _ := s.At(seam)
	dayBefore, _ := s.At(seam.Add(-24 * time.Hour))
	// The estimate's history is all the provider fetched: 7 days back.
	long, err := newFixtureProvider(t, srv.URL, nil).Fetch(context.Background(), "FR", fixtureNow.Add(-7*24*time.Hour), to)
	require.NoError(t, err)
	est := forecast.Forecaster{}.Forecast(historyOf(long, seam), seam, time.Hour)
	w := 1 - 0.5/6.0
	require.InDelta(t, w*dayBefore.GCO2PerKWh+(1-w)*est.Points[0].GCO2PerKWh, first.GCO2PerKWh, 1e-9)
}

func historyOf(s forecast.Series, until time.Time) forecast.Series {
	h := s
	h.Points = nil
	for _, p := range s.Points {
		if !p.End.After(until) {
			h.Points = append(h.Points, p)
		}
	}
	return h
}

// TestHistoryReproducesLetsWaitAwhile: with the SRREN factors Let's Wait
// Awhile used, the actuals this provider computes from the A75 payload are
// the shared data's lwa_FR_2020.csv at every hour the source shows no
// import (the paper's series also weighs imports by country factors).
func TestHistoryReproducesLetsWaitAwhile(t *testing.T) {
	t.Parallel()
	lwa := filepath.Join("..", "..", "..", "shared", "data", "carbon", "lwa_FR_2020.csv")
	raw, err := os.ReadFile(lwa)
	if err != nil {
		t.Skipf("shared data not found: %v", err)
	}
	want := map[time.Time]float64{}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		ts, v, ok := strings.Cut(line, ",")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339, ts)
		require.NoError(t, err)
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		want[at] = f
	}
	srrn := map[string]float64{
		PSRBiomass: 18, PSRGas: 469, PSRHardCoal: 1001, PSROil: 840, PSRRunOfRiver: 4, PSRReservoir: 4,
		PSRNuclear: 16, PSRSolar: 46, PSRWindOnshore: 12, PSRWindOffshore: 12, PSRWaste: 0, PSROther: 770,
	}
	srv := httptest.NewServer(fixtureServer(t, routes(t, "a75.xml", "a69.xml", "a65.xml")))
	defer srv.Close()
	s, err := newFixtureProvider(t, srv.URL, func(c *Config) { c.Factors = srrn }).Fetch(context.Background(), "FR", time.Date(2019, 12, 20, 0, 0, 0, 0, time.UTC), fixtureNow.Add(24*time.Hour))
	require.NoError(t, err)
	prod := readProduction(t)
	imports := importFree(t)
	n := 0
	for _, p := range s.Points {
		if p.Kind != forecast.KindActual || !imports[p.Start] {
			continue
		}
		w, ok := want[p.Start]
		require.True(t, ok, p.Start)
		require.InDelta(t, w, p.GCO2PerKWh, 1e-9, "%s", p.Start)
		n++
	}
	require.Greater(t, n, 5, "hours compared (of %d)", len(prod.hours))
}

// importFree lists the hours of the CSV whose import columns are all 0.
func importFree(t *testing.T) map[time.Time]bool {
	t.Helper()
	raw := read(t, "fr_production_2019-12-20_2019-12-25.csv")
	lines := strings.Split(strings.TrimSpace(raw), "\n")
	head := strings.Split(lines[0], ",")
	out := map[time.Time]bool{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		at, err := time.Parse("2006-01-02 15:04:05", f[0])
		require.NoError(t, err)
		free := true
		for i, h := range head {
			if len(h) == 2 && f[i] != "0.0" { // the country columns: BE, DE, IT, ES, CH, GB
				free = false
			}
		}
		out[at.UTC()] = free
	}
	return out
}

// fixtureServer answers from routes as the shared suite does.
func fixtureServer(t *testing.T, rs map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := checkRequest(r); msg != "" {
			t.Errorf("request %s: %s", r.URL.Path, msg)
		}
		body, ok := rs["/api?documentType="+r.URL.Query().Get("documentType")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	})
}

func TestFixedMixWithoutHistory(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(fixtureServer(t, routes(t, "a75.xml", "a69.xml", "a65.xml")))
	defer srv.Close()
	s, err := newFixtureProvider(t, srv.URL, func(c *Config) { c.SkipHistory = true }).Fetch(context.Background(), "10YFR-RTE------C", fixtureNow, fixtureNow.Add(30*time.Hour))
	require.NoError(t, err)
	p, ok := s.At(nightAt)
	require.True(t, ok)
	// Every MW beyond wind and sun is the fixed mix, 0.6 × 490 + 0.4 × 820.
	prod := readProduction(t)
	i := int(nightAt.Sub(prod.hours[0]) / time.Hour)
	var load float64
	for _, ct := range csvTypes {
		if ct.psr != PSRPumpedStorage {
			load += prod.mw[ct.psr][i]
		}
	}
	sol, wind := prod.mw[PSRSolar][i], prod.mw[PSRWindOnshore][i]
	want := (sol*45 + wind*11 + (load-sol-wind)*622) / load
	require.InDelta(t, want, p.GCO2PerKWh, 1e-9)
}

func TestParseDocument(t *testing.T) {
	t.Parallel()
	doc := func(curve, points string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"><type>A75</type>
<TimeSeries><inBiddingZone_Domain.mRID codingScheme="A01">10YFR-RTE------C</inBiddingZone_Domain.mRID><quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>` + curve + `</curveType><MktPSRType><psrType>B04</psrType></MktPSRType>
<Period><timeInterval><start>2023-03-25T23:00Z</start><end>2023-03-26T00:00Z</end></timeInterval><resolution>PT15M</resolution>` + points + `</Period></TimeSeries></GL_MarketDocument>`
	}
	pt := func(pos, q string) string {
		return "<Point><position>" + pos + "</position><quantity>" + q + "</quantity></Point>"
	}
	ss, err := parseDocument([]byte(doc("A03", pt("1", "10")+pt("3", "30"))))
	require.NoError(t, err)
	require.Len(t, ss, 1)
	var mws []float64
	for _, b := range ss[0].blocks {
		mws = append(mws, b.mw)
		require.Equal(t, 15*time.Minute, b.end.Sub(b.start))
	}
	require.Equal(t, []float64{10, 10, 30, 30}, mws, "A03 repeats the quantity of an omitted position")
	ss, err = parseDocument([]byte(doc("A01", pt("1", "10")+pt("3", "30"))))
	require.NoError(t, err)
	require.Len(t, ss[0].blocks, 2, "A01: an omitted position is a gap")

	for name, body := range map[string]string{
		"position":   doc("A01", pt("5", "1")),
		"quantity":   doc("A01", pt("1", "NaN")),
		"curve":      doc("A07", pt("1", "1")),
		"unit":       strings.Replace(doc("A01", pt("1", "1")), "MAW", "MWH", 1),
		"resolution": strings.Replace(doc("A01", pt("1", "1")), "PT15M", "P1Y", 1),
		"time":       strings.Replace(doc("A01", pt("1", "1")), "2023-03-25T23:00Z", "yesterday", 1),
		"html":       "<html>maintenance</html>",
		"json":       `{"data": []}`,
		"empty":      "",
		"refused":    `<Acknowledgement_MarketDocument><Reason><code>999</code><text>The amount of requested data exceeds allowed limit</text></Reason></Acknowledgement_MarketDocument>`,
	} {
		_, err := parseDocument([]byte(body))
		require.ErrorIs(t, err, forecast.ErrBadPayload, name)
	}
	_, err = parseDocument([]byte(read(t, "empty.xml")))
	require.ErrorIs(t, err, forecast.ErrNoData)
	require.ErrorContains(t, err, "No matching data found")
}

func TestRealPayloadShape(t *testing.T) {
	t.Parallel()
	// The fixture's documents parse into what the CSV holds.
	ss, err := parseDocument([]byte(read(t, "a75.xml")))
	require.NoError(t, err)
	g := newGeneration(ss)
	_, pumpedKept := g[PSRPumpedStorage]
	require.False(t, pumpedKept, "storage is left out of the mix")
	v, ok := g[PSRNuclear].mean(actualAt, actualAt.Add(time.Hour))
	require.True(t, ok)
	require.Equal(t, 44597.0, v)
	var consumption int
	for _, s := range ss {
		if s.consumption {
			consumption++
			require.Equal(t, PSRPumpedStorage, s.psr)
		}
	}
	require.Equal(t, 1, consumption)
}

func TestZoneEIC(t *testing.T) {
	t.Parallel()
	for zone, want := range map[string]string{"DE-LU": "10Y1001A1001A82H", "de": "10Y1001A1001A82H", "FR": frEIC, "10YNL----------L": "10YNL----------L", "SE-SE3": "10Y1001A1001A46L"} {
		got, ok := ZoneEIC(zone)
		require.True(t, ok, zone)
		require.Equal(t, want, got, zone)
	}
	_, ok := ZoneEIC("GB-1")
	require.False(t, ok)
	p, err := New(Config{Token: "t"}, nil)
	require.NoError(t, err)
	_, err = p.Fetch(context.Background(), "Atlantis", fixtureNow, fixtureNow.Add(time.Hour))
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "zone", ge.Field)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for field, cfg := range map[string]Config{
		"providers.entsoe.token":          {},
		"providers.entsoe.base_url":       {Token: "t", BaseURL: "web-api"},
		"providers.entsoe.history_window": {Token: "t", HistoryWindow: -time.Hour},
		"providers.entsoe.fixed_mix":      {Token: "t", FixedMix: map[string]float64{"B99": 1}},
		"providers.entsoe.factors":        {Token: "t", Factors: map[string]float64{PSRGas: 490}},
	} {
		_, err := New(cfg, nil)
		var ge *greenq.Error
		require.True(t, errors.As(err, &ge), "%s: %v", field, err)
		require.Equal(t, field, ge.Field)
	}
}

// TestTokenNotInErrors: a transport error names the URL, never the token.
func TestTokenNotInErrors(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Token: "s3cret", BaseURL: "http://127.0.0.1:1", Now: func() time.Time { return fixtureNow }}, nil)
	require.NoError(t, err)
	_, err = p.Fetch(context.Background(), "FR", fixtureNow, fixtureNow.Add(time.Hour))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}
