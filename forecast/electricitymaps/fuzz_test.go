package electricitymaps

import (
	"errors"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
)

func FuzzParseElectricityMaps(f *testing.F) {
	for _, n := range []string{"forecast.json", "history.json", "past_range.json", "forecast_empty.json"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, field := range []string{"forecast", "history", "data"} {
			got, err := parse(b, field, forecast.KindForecast)
			if err != nil {
				if !errors.Is(err, forecast.ErrBadPayload) {
					t.Fatalf("error %v does not wrap ErrBadPayload", err)
				}
				continue
			}
			_, _ = forecast.BuildPoints(got, 0)
		}
	})
}
