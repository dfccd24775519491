package carbonaware_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/carbonaware"
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
	now := time.Date(2023, 6, 9, 0, 3, 30, 0, time.UTC)
	forecasttest.RunProviderSuite(t, func(base string) forecast.Provider {
		p, err := carbonaware.New(carbonaware.Config{BaseURL: base, Now: func() time.Time { return now }}, nil)
		require.NoError(t, err)
		return p
	}, forecasttest.Fixture{
		Zone: "westus", From: now.Add(-24 * time.Hour), To: now.Add(24 * time.Hour),
		OK: map[string]string{
			"/emissions/forecasts/current": read(t, "forecasts_current.json"),
			"/emissions/bylocations":       read(t, "bylocations.json"),
		},
		Empty: map[string]string{
			"/emissions/forecasts/current": read(t, "forecasts_empty.json"),
			"/emissions/bylocations":       read(t, "bylocations_empty.json"),
		},
		History: []string{"/emissions/bylocations"},
		Signal:  forecast.SignalMarginal, MinPoints: 48,
		Values: map[time.Time]float64{
			time.Date(2023, 6, 8, 0, 0, 0, 0, time.UTC): 206.31,
		},
		Check: func(r *http.Request) string {
			if r.URL.Query().Get("location") != "westus" {
				return "no location"
			}
			return ""
		},
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := carbonaware.New(carbonaware.Config{Signal: "lcoe"}, nil)
	require.ErrorContains(t, err, "signal")
	_, err = carbonaware.New(carbonaware.Config{WindowSize: -1}, nil)
	require.ErrorContains(t, err, "window_size")
}
