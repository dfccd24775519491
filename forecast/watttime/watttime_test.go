package watttime_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/forecasttest"
	"github.com/greenq/greenq/forecast/watttime"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

var now = time.Date(2023, 6, 8, 0, 58, 0, 0, time.UTC)

func cfg(base string) watttime.Config {
	return watttime.Config{BaseURL: base, Username: "u", Password: "p", History: true, Now: func() time.Time { return now }}
}

func TestProviderSuite(t *testing.T) {
	t.Parallel()
	login := read(t, "login.json")
	forecasttest.RunProviderSuite(t, func(base string) forecast.Provider {
		p, err := watttime.New(cfg(base), nil)
		require.NoError(t, err)
		return p
	}, forecasttest.Fixture{
		Zone: "CAISO_NORTH", From: time.Date(2023, 6, 8, 0, 0, 0, 0, time.UTC), To: now.Add(time.Hour),
		OK:     map[string]string{"/login": login, "/v3/forecast": read(t, "forecast.json"), "/v3/historical": read(t, "historical.json")},
		Empty:  map[string]string{"/login": login, "/v3/forecast": read(t, "forecast_empty.json"), "/v3/historical": read(t, "forecast_empty.json")},
		Keep:   []string{"/login"},
		Signal: forecast.SignalMarginal, MinPoints: 13,
		Values: map[time.Time]float64{
			time.Date(2023, 6, 8, 0, 0, 0, 0, time.UTC):  425.016, // actual
			time.Date(2023, 6, 8, 1, 5, 0, 0, time.UTC):  426.286, // forecast, converted from lbs/MWh
			time.Date(2023, 6, 8, 0, 55, 0, 0, time.UTC): 432.727, // actual wins over forecast
		},
		Check: func(r *http.Request) string {
			if r.URL.Path == "/login" {
				if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
					return "login without basic auth"
				}
				return ""
			}
			if r.Header.Get("Authorization") != "Bearer eyJhbGciOiJSUzI1NiJ9.test.sig" {
				return "no bearer token"
			}
			if q := r.URL.Query(); q.Get("region") != "CAISO_NORTH" || q.Get("signal_type") != "co2_moer" {
				return "bad query " + r.URL.RawQuery
			}
			return ""
		},
	})
}

// TestTokenCachedAndRenewedOn401 checks one login serves many fetches and a
// 401 triggers exactly one fresh login.
func TestTokenCachedAndRenewedOn401(t *testing.T) {
	t.Parallel()
	var logins, reject atomic.Int32
	fc := read(t, "forecast.json")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			n := logins.Add(1)
			_, _ = w.Write([]byte(`{"token":"t` + string(rune('0'+n)) + `"}`))
			return
		}
		if reject.Load() > 0 && strings.HasSuffix(r.Header.Get("Authorization"), "t1") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(fc))
	}))
	defer ts.Close()
	c := cfg(ts.URL)
	c.History = false
	p, err := watttime.New(c, nil)
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		_, err := p.Fetch(ctx, "CAISO_NORTH", now, now.Add(time.Hour))
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), logins.Load())
	reject.Store(1)
	_, err = p.Fetch(ctx, "CAISO_NORTH", now, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int32(2), logins.Load())
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field string
		cfg   watttime.Config
	}{
		{"username", watttime.Config{}},
		{"signal_type", watttime.Config{Username: "u", Password: "p", SignalType: "health_damage"}},
		{"horizon_hours", watttime.Config{Username: "u", Password: "p", HorizonHours: 100}},
		{"base_url", watttime.Config{Username: "u", Password: "p", BaseURL: "nope"}},
	} {
		_, err := watttime.New(tc.cfg, nil)
		require.ErrorContains(t, err, tc.field)
	}
}
