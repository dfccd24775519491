package watttime

import (
	"errors"
	"math"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
)

func FuzzParseWattTime(f *testing.F) {
	for _, n := range []string{"forecast.json", "historical.json", "forecast_empty.json"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"data":[{"point_time":"2023-06-08T00:05:00+00:00","value":1e400}],"meta":{"units":"lbs_co2_per_mwh"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := parse(b, forecast.KindForecast)
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		pts, err := forecast.BuildPoints(got, 0)
		if err != nil {
			return
		}
		for _, p := range pts {
			if math.IsNaN(p.GCO2PerKWh) || p.GCO2PerKWh < 0 {
				t.Fatalf("bad value %v", p.GCO2PerKWh)
			}
		}
	})
}
