package file_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/file"
)

func FuzzParseCSV(f *testing.F) {
	b, err := os.ReadFile("testdata/GB.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,1e309\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := file.ParseCSV(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		if _, err := forecast.BuildPoints(got, 0); err != nil {
			t.Fatalf("parsed samples rejected: %v", err)
		}
	})
}
