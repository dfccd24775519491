package ukci

import (
	"errors"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
)

func FuzzParseUKCI(f *testing.F) {
	for _, n := range []string{"national_fw48h.json", "regional_object.json", "regional_array.json", "regional_empty.json"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"data":[{"from":"2023-03-14T03:30Z","to":"2023-03-14T03:00Z","intensity":{"forecast":-1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parse(b)
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		if _, err := forecast.BuildPoints(got, 0); err == nil {
			for _, s := range got {
				if s.Duration <= 0 {
					t.Fatalf("sample without duration: %+v", s)
				}
			}
		}
	})
}
