package backtest

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestReadWorkloadFixture(t *testing.T) {
	t.Parallel()
	jobs, err := ReadWorkloadFile("testdata/workload.csv")
	require.NoError(t, err)
	require.Len(t, jobs, 8)
	require.Equal(t, Job{ID: "train-b", Submit: time.Date(2023, 3, 14, 9, 20, 0, 0, time.UTC), Duration: time.Hour, GPUs: 1,
		Deadline: time.Date(2023, 3, 14, 20, 0, 0, 0, time.UTC), Regions: []string{"GB"}, Interruptible: true, PowerW: 250, Line: 3}, jobs[1])
	require.Equal(t, []string{"US-CAL-CISO", "GB"}, jobs[2].Regions)
	require.Nil(t, jobs[0].Regions)
	require.Equal(t, float64(DefaultPowerW), jobs[0].PowerW)
	require.Equal(t, 90*time.Minute, jobs[4].Duration)
}

func TestReadWorkloadErrors(t *testing.T) {
	t.Parallel()
	const head = "id,submit_utc,duration_s,gpus,deadline_utc\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "w.csv:1:1: header: the file is empty"},
		{"missing column", "id,submit_utc,duration_s,gpus\n", `w.csv:1:1: header: missing column "deadline_utc"`},
		{"unknown column", "id,submit_utc,duration_s,gpus,deadline_utc,colour\n", `w.csv:1:6: header: unknown column "colour"`},
		{"bad time", head + "a,2023-01-01 00:00,60,1,2023-01-02T00:00:00Z\n", "w.csv:2:3: submit_utc: not an RFC 3339 time"},
		{"bad duration", head + "a,2023-01-01T00:00:00Z,-5,1,2023-01-02T00:00:00Z\n", `w.csv:2:24: duration_s: want seconds > 0`},
		{"bad gpus", head + "a,2023-01-01T00:00:00Z,60,0,2023-01-02T00:00:00Z\n", `w.csv:2:27: gpus: want a whole number ≥ 1, got "0"`},
		{"deadline before submit", head + "a,2023-01-02T00:00:00Z,60,1,2023-01-01T00:00:00Z\n", "w.csv:2:29: deadline_utc: deadline 2023-01-01T00:00:00Z is before submit_utc"},
		{"duplicate id", head + "a,2023-01-01T00:00:00Z,60,1,2023-01-02T00:00:00Z\na,2023-01-01T00:00:00Z,60,1,2023-01-02T00:00:00Z\n", `w.csv:3:1: id: id "a" was already used on line 2`},
		{"field count", head + "a,2023-01-01T00:00:00Z,60,1\n", "w.csv:2:1: csv: wrong number of fields"},
		{"bad interruptible", "id,submit_utc,duration_s,gpus,deadline_utc,interruptible\na,2023-01-01T00:00:00Z,60,1,2023-01-02T00:00:00Z,yes\n", `w.csv:2:50: interruptible: want true or false, got "yes"`},
		{"empty region", "id,submit_utc,duration_s,gpus,deadline_utc,regions\na,2023-01-01T00:00:00Z,60,1,2023-01-02T00:00:00Z,GB;;SE\n", `regions: empty region name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadWorkload(strings.NewReader(tc.in), "w.csv")
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			var ge *greenq.Error
			require.True(t, errors.As(err, &ge))
			require.Equal(t, greenq.CodeInvalidArgument, ge.Code)
		})
	}
}

func TestReadCarbon(t *testing.T) {
	t.Parallel()
	s, err := ReadCarbon(strings.NewReader("time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,100\n2023-01-01T00:30:00Z,50\n2023-01-01T01:30:00Z,70\n"), "c.csv", "GB")
	require.NoError(t, err)
	require.NoError(t, s.Validate())
	require.Len(t, s.Points, 3)
	require.Equal(t, time.Date(2023, 1, 1, 1, 30, 0, 0, time.UTC), s.Points[1].End)
	require.Equal(t, time.Date(2023, 1, 1, 2, 30, 0, 0, time.UTC), s.Points[2].End, "the last point lasts as long as the step before it")

	fixture, err := ReadCarbonDir("testdata/carbon")
	require.NoError(t, err)
	require.Len(t, fixture, 2)
	require.Len(t, fixture["GB"].Points, 96)

	for _, tc := range []struct{ in, want string }{
		{"time,value\n", `c.csv:1:1: header: got "time,value"`},
		{"time_utc,gco2_per_kwh\n", "c.csv:2:1: time_utc: no data rows"},
		{"time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,x\n", "c.csv:2:22: gco2_per_kwh: not a finite number"},
		{"time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,1\n2023-01-01T00:00:00Z,2\n", "c.csv:3:1: time_utc: time 2023-01-01T00:00:00Z is not after"},
		{"time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,-1\n", "c.csv:2:22: gco2_per_kwh"},
	} {
		_, err := ReadCarbon(strings.NewReader(tc.in), "c.csv", "GB")
		require.ErrorContains(t, err, tc.want)
	}
}

func TestReadForecasts(t *testing.T) {
	t.Parallel()
	fh, err := os.Open("testdata/forecasts/GB.csv")
	require.NoError(t, err)
	defer fh.Close()
	vs, err := ReadForecasts(fh, "GB.csv", "GB")
	require.NoError(t, err)
	require.Len(t, vs, 4)
	for _, v := range vs {
		require.NoError(t, v.Validate())
		require.Len(t, v.Points, 96)
	}
	require.Equal(t, time.Date(2023, 3, 14, 20, 1, 0, 0, time.UTC), vs[3].IssuedAt)

	_, err = ReadForecasts(strings.NewReader("issued_utc,target_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,2023-01-01T00:00:00Z,1\n2023-01-01T00:00:00Z,2023-01-01T00:00:00Z,2\n"), "f.csv", "GB")
	require.ErrorContains(t, err, "f.csv:3:1: target_utc: target 2023-01-01T00:00:00Z appears twice")
}

func TestParsePairs(t *testing.T) {
	t.Parallel()
	c, err := ParseCapacity("GB=8, SE=16")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"GB": 8, "SE": 16}, c)
	p, err := ParsePUE("GB=1.1")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"GB": 1.1}, p)
	empty, err := ParseCapacity("")
	require.NoError(t, err)
	require.Empty(t, empty)
	for _, bad := range []string{"GB", "GB=0", "GB=x", "GB=1,GB=2", "=3"} {
		_, err := ParseCapacity(bad)
		require.Error(t, err, bad)
		require.Equal(t, greenq.CodeInvalidArgument, greenq.ErrorCodeOf(err))
	}
	_, err = ParsePUE("GB=0.9")
	require.ErrorContains(t, err, "pue: region GB: want a number ≥ 1")
}

func FuzzReadWorkload(f *testing.F) {
	b, err := os.ReadFile("testdata/workload.csv")
	require.NoError(f, err)
	f.Add(string(b))
	f.Add("id,submit_utc,duration_s,gpus,deadline_utc\na,2023-01-01T00:00:00Z,1e3,1,2023-01-02T00:00:00Z\n")
	f.Add("id,regions,submit_utc,duration_s,gpus,deadline_utc\n\"a\"\"\",x;y,2023-01-01T00:00:00+02:00,0.5,3,2023-01-02T00:00:00Z\n")
	f.Fuzz(func(t *testing.T, in string) {
		jobs, err := ReadWorkload(strings.NewReader(in), "w.csv")
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "error %v is not a ParseError", err)
			require.GreaterOrEqual(t, pe.Line, 1)
			require.GreaterOrEqual(t, pe.Column, 1)
			return
		}
		ids := map[string]bool{}
		for _, j := range jobs {
			require.NotEmpty(t, j.ID)
			require.False(t, ids[j.ID])
			ids[j.ID] = true
			require.Positive(t, j.Duration)
			require.GreaterOrEqual(t, j.GPUs, 1)
			require.False(t, j.Deadline.Before(j.Submit))
			require.Positive(t, j.PowerW)
		}
	})
}

func FuzzReadCarbon(f *testing.F) {
	b, err := os.ReadFile("testdata/carbon/GB.csv")
	require.NoError(f, err)
	f.Add(string(b))
	f.Add("time_utc,gco2_per_kwh\n2023-01-01T00:00:00Z,1\n")
	f.Add("time_utc,gco2_per_kwh\n2023-01-01T00:00:00.5Z,1.5e2\n2023-01-01T00:00:01Z,0\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ReadCarbon(strings.NewReader(in), "c.csv", "R")
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "error %v is not a ParseError", err)
			return
		}
		require.NoError(t, s.Validate())
		require.NotEmpty(t, s.Points)
		for i := 1; i < len(s.Points); i++ {
			require.Equal(t, s.Points[i-1].End, s.Points[i].Start)
		}
	})
}
