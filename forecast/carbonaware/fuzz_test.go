package carbonaware

import (
	"errors"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
)

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseForecast(f *testing.F) {
	seed(f, "forecasts_current.json", "forecasts_empty.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := parseForecast(b)
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		_, _ = forecast.BuildPoints(got, 0)
	})
}

func FuzzParseEmissions(f *testing.F) {
	seed(f, "bylocations.json", "bylocations_empty.json")
	f.Add([]byte(`[{"time":"2023-06-08T00:00:00Z","rating":1,"duration":"1.02:03:04.5"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseEmissions(b)
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		for _, s := range got {
			if s.Duration < 0 {
				t.Fatalf("negative duration %v", s.Duration)
			}
		}
	})
}
