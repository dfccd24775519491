package ukci_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/forecasttest"
	"github.com/greenq/greenq/forecast/ukci"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

var pathRE = regexp.MustCompile(`^(/regional)?/intensity/\d{4}-\d\d-\d\dT\d\d:\d\dZ/fw48h(/regionid/\d+)?$`)

func newProvider(t *testing.T) func(string) forecast.Provider {
	return func(base string) forecast.Provider {
		p, err := ukci.New(ukci.Config{BaseURL: base, MaxWindows: 1}, nil)
		require.NoError(t, err)
		return p
	}
}

func TestProviderSuite(t *testing.T) {
	t.Parallel()
	from := time.Date(2023, 3, 14, 3, 31, 0, 0, time.UTC)
	check := func(r *http.Request) string {
		if !pathRE.MatchString(r.URL.Path) {
			return "path not in the API's shape (no seconds allowed): " + r.URL.Path
		}
		return ""
	}
	values := map[time.Time]float64{
		time.Date(2023, 3, 14, 3, 30, 0, 0, time.UTC): 78, // actual wins over forecast 69
		time.Date(2023, 3, 14, 4, 0, 0, 0, time.UTC):  72,
	}
	for _, tc := range []struct {
		name, zone, ok, empty string
	}{
		{"national", "GB", "national_fw48h.json", "national_empty.json"},
		{"regional object", "GB-13", "regional_object.json", "regional_empty.json"},
		{"regional array", "13", "regional_array.json", "regional_empty.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := values
			if tc.zone != "GB" {
				v = map[time.Time]float64{time.Date(2023, 3, 14, 3, 30, 0, 0, time.UTC): 69}
			}
			forecasttest.RunProviderSuite(t, newProvider(t), forecasttest.Fixture{
				Zone: tc.zone, From: from, To: from.Add(48 * time.Hour),
				OK:     map[string]string{"/": read(t, tc.ok)},
				Empty:  map[string]string{"/": read(t, tc.empty)},
				Signal: forecast.SignalAverage, MinPoints: 96, Values: v, Check: check,
			})
		})
	}
}

func TestFetchRequestsHalfHourWithoutSeconds(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		paths []string
	)
	body := read(t, "national_fw48h.json")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		_, _ = w.Write([]byte(body))
	}))
	defer ts.Close()
	p, err := ukci.New(ukci.Config{BaseURL: ts.URL}, nil)
	require.NoError(t, err)
	from := time.Date(2023, 3, 14, 3, 47, 12, 0, time.UTC)
	s, err := p.Fetch(context.Background(), "GB-7", from, from.Add(24*time.Hour))
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"/regional/intensity/2023-03-14T03:30Z/fw48h/regionid/7"}, paths)
	require.Len(t, s.Points, 96)
	require.Equal(t, 30*time.Minute, s.Points[5].End.Sub(s.Points[5].Start))
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []ukci.Config{{BaseURL: "::"}, {BaseURL: "relative/path"}, {MaxWindows: -1}} {
		_, err := ukci.New(cfg, nil)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestZones(t *testing.T) {
	t.Parallel()
	p, err := ukci.New(ukci.Config{BaseURL: "http://127.0.0.1:1"}, nil)
	require.NoError(t, err)
	_, err = p.Fetch(context.Background(), "FR", time.Now(), time.Now().Add(time.Hour))
	require.ErrorContains(t, err, "FR")
}
