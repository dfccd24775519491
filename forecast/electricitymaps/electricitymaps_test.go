package electricitymaps_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/electricitymaps"
	"github.com/greenq/greenq/forecast/forecasttest"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

func TestProviderSuite(t *testing.T) {
	t.Parallel()
	now := time.Date(2023, 3, 15, 0, 10, 0, 0, time.UTC)
	ok := map[string]string{
		"/v3/carbon-intensity/forecast":   read(t, "forecast.json"),
		"/v3/carbon-intensity/history":    read(t, "history.json"),
		"/v3/carbon-intensity/past-range": read(t, "past_range.json"),
	}
	empty := map[string]string{
		"/v3/carbon-intensity/forecast":   read(t, "forecast_empty.json"),
		"/v3/carbon-intensity/history":    read(t, "history_empty.json"),
		"/v3/carbon-intensity/past-range": read(t, "past_range_empty.json"),
	}
	check := func(r *http.Request) string {
		if r.Header.Get("auth-token") != "k" {
			return "no auth-token header"
		}
		if r.URL.Query().Get("zone") != "GB" {
			return "no zone"
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		from time.Time
	}{
		{"history", now.Add(-24 * time.Hour)},
		{"past range", now.Add(-48 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forecasttest.RunProviderSuite(t, func(base string) forecast.Provider {
				p, err := electricitymaps.New(electricitymaps.Config{BaseURL: base, APIKey: "k", Now: func() time.Time { return now }}, nil)
				require.NoError(t, err)
				return p
			}, forecasttest.Fixture{
				Zone: "GB", From: tc.from, To: now.Add(72 * time.Hour), OK: ok, Empty: empty,
				Signal: forecast.SignalAverage, MinPoints: 96, Check: check,
				History: []string{"/v3/carbon-intensity/history", "/v3/carbon-intensity/past-range"},
				Values: map[time.Time]float64{
					time.Date(2023, 3, 14, 0, 0, 0, 0, time.UTC):  122,
					time.Date(2023, 3, 17, 23, 0, 0, 0, time.UTC): 202,
				},
			})
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := electricitymaps.New(electricitymaps.Config{}, nil)
	require.ErrorContains(t, err, "api_key")
	_, err = electricitymaps.New(electricitymaps.Config{APIKey: "k", BaseURL: "x"}, nil)
	require.ErrorContains(t, err, "base_url")
}
