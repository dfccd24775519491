package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/file"
	"github.com/greenq/greenq/forecast/forecasttest"
)

func TestFetchPlain(t *testing.T) {
	t.Parallel()
	p, err := file.New(file.Config{Dir: "testdata"})
	require.NoError(t, err)
	from := time.Date(2023, 3, 14, 0, 0, 0, 0, time.UTC)
	s, err := p.Fetch(context.Background(), "GB", from, from.Add(96*time.Hour))
	require.NoError(t, err)
	forecasttest.CheckSeries(t, s, forecast.SignalAverage)
	require.Len(t, s.Points, 96)
	require.Equal(t, "file", s.Source)
	for _, pt := range s.Points {
		require.Equal(t, forecast.KindActual, pt.Kind)
	}
	require.Equal(t, time.Hour, s.Points[95].End.Sub(s.Points[95].Start), "last point gets the median step")
	require.InDelta(t, 121.74, s.Points[0].GCO2PerKWh, 0.01)
}

func TestFetchReplay(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	p, err := file.New(file.Config{Dir: "testdata", Replay: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	s, err := p.Fetch(context.Background(), "GB", now.Add(-24*time.Hour), now.Add(24*time.Hour))
	require.NoError(t, err)
	forecasttest.CheckSeries(t, s, forecast.SignalAverage)
	require.Equal(t, "file:replay(2023)", s.Source)
	require.False(t, s.End().Before(now.Add(24*time.Hour)), "replay reaches to")
	orig := time.Date(2023, 3, 14, 0, 0, 0, 0, time.UTC)
	plain, err := file.New(file.Config{Dir: "testdata"})
	require.NoError(t, err)
	all, err := plain.Fetch(context.Background(), "GB", orig, orig.Add(96*time.Hour))
	require.NoError(t, err)
	off := s.Points[0].Start.Sub(orig) % (7 * 24 * time.Hour)
	src, ok := all.At(orig.Add(off))
	require.True(t, ok)
	require.Equal(t, src.GCO2PerKWh, s.Points[0].GCO2PerKWh, "shift is whole weeks")
	for _, pt := range s.Points {
		want := forecast.KindForecast
		if !pt.End.After(now) {
			want = forecast.KindActual
		}
		require.Equal(t, want, pt.Kind, "point at %s", pt.Start)
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".csv"), []byte(body), 0o600))
	}
	write("EMPTY", "time_utc,gco2_per_kwh\n")
	write("HEADER", "time,value\n2023-01-01T00:00:00Z,5\n")
	write("NAN", "time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,NaN\n")
	write("NEG", "time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,-3\n")
	write("TIME", "time_utc,gco2_per_kwh\n2023-01-01 00:00,3\n")
	write("OK", "time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,3\n2023-01-01T00:30:00Z,4\n")
	p, err := file.New(file.Config{Dir: dir})
	require.NoError(t, err)
	from := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		zone string
		want error
	}{
		{"EMPTY", forecast.ErrNoData},
		{"MISSING", forecast.ErrNoData},
		{"HEADER", forecast.ErrBadPayload},
		{"NAN", forecast.ErrBadPayload},
		{"NEG", forecast.ErrBadPayload},
		{"TIME", forecast.ErrBadPayload},
	} {
		_, err := p.Fetch(context.Background(), tc.zone, from, from.Add(time.Hour))
		require.ErrorIs(t, err, tc.want, tc.zone)
	}
	_, err = p.Fetch(context.Background(), "../etc/passwd", from, from.Add(time.Hour))
	require.Error(t, err)
	_, err = p.Fetch(context.Background(), "OK", from.Add(48*time.Hour), from.Add(49*time.Hour))
	require.ErrorIs(t, err, forecast.ErrNoData)
	s, err := p.Fetch(context.Background(), "OK", from, from.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, s.Points, 2)
	require.Equal(t, 30*time.Minute, s.Points[1].End.Sub(s.Points[1].Start))
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := file.New(file.Config{})
	require.ErrorContains(t, err, "dir")
	_, err = file.New(file.Config{Dir: "x", Signal: "both"})
	require.ErrorContains(t, err, "signal")
}
