package entsoe

import (
	"errors"
	"os"
	"testing"

	"github.com/greenq/greenq/forecast"
)

func FuzzParseDocument(f *testing.F) {
	for _, n := range []string{"a69.xml", "a65.xml", "empty.xml"} {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := parseDocument(b)
		if err != nil {
			if !errors.Is(err, forecast.ErrBadPayload) && !errors.Is(err, forecast.ErrNoData) {
				t.Fatalf("error %v wraps neither ErrBadPayload nor ErrNoData", err)
			}
			return
		}
		for _, s := range ss {
			for i, b := range s.blocks {
				if !b.end.After(b.start) || (i > 0 && b.start.Before(s.blocks[i-1].start)) {
					t.Fatalf("block %d of %s out of order", i, s.psr)
				}
			}
		}
	})
}
