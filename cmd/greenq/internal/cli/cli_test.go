package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// fakeAPI answers like the real API for the few routes the tests use and
// counts submissions that reached it.
type fakeAPI struct {
	posts atomic.Int32
	jobs  map[string]*greenq.Job
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeErr := func(status int, e *greenq.Error) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/jobs":
		f.posts.Add(1)
		var req greenq.SubmitRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(400, greenq.Invalid("body", "%v", err))
			return
		}
		if _, err := req.Normalize(time.Now(), []string{"uk-south", "us-west"}); err != nil {
			writeErr(400, err.(*greenq.Error))
			return
		}
		j := &greenq.Job{ID: "job-1", State: greenq.StatePending, Command: req.Command, GPUs: req.GPUs, Kind: req.Kind}
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(j)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/jobs/"):
		j, ok := f.jobs[strings.TrimPrefix(r.URL.Path, "/v1/jobs/")]
		if !ok {
			writeErr(404, &greenq.Error{Code: greenq.CodeNotFound, Message: "no such job"})
			return
		}
		_ = json.NewEncoder(w).Encode(j)
	default:
		writeErr(404, &greenq.Error{Code: greenq.CodeNotFound, Message: "no route"})
	}
}

func run(t *testing.T, api string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), append([]string{"--api", api}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSubmitBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", greenq.MaxNameLen+1)
	for _, tc := range []struct {
		name   string
		args   []string
		field  string
		server bool // refused by the server, not locally
	}{
		{"deadline in the past", []string{"--deadline", "2020-01-01T00:00:00Z", "--", "echo"}, "deadline", false},
		{"deadline unparseable", []string{"--deadline", "next tuesday", "--", "echo"}, "deadline", false},
		{"deadline missing", []string{"--", "echo"}, "deadline", false},
		{"deadline shorter than duration", []string{"--deadline", "1h", "--duration", "2h", "--", "echo"}, "deadline", false},
		{"deadline absurdly far", []string{"--deadline", "200000h", "--", "echo"}, "deadline", false},
		{"gpus zero", []string{"--deadline", "1h", "--gpus", "0", "--", "echo"}, "gpus", false},
		{"gpus negative", []string{"--deadline", "1h", "--gpus", "-2", "--", "echo"}, "gpus", false},
		{"unknown kind", []string{"--deadline", "1h", "--kind", "pretrain", "--", "echo"}, "kind", false},
		{"no command", []string{"--deadline", "1h"}, "command", false},
		{"trials zero", []string{"--deadline", "1h", "--trials", "0", "--", "echo"}, "trials", false},
		{"too many trials", []string{"--deadline", "1h", "--trials", "100000", "--", "echo"}, "trials", false},
		{"NUL byte in command", []string{"--deadline", "1h", "--", "echo", "a\x00b"}, "command", false},
		{"invalid UTF-8 in command", []string{"--deadline", "1h", "--", "echo", "\xff"}, "command", false},
		{"oversized name", []string{"--deadline", "1h", "--name", long, "--", "echo"}, "name", false},
		{"bad tag", []string{"--deadline", "1h", "--tag", "novalue", "--", "echo"}, "tag", false},
		{"negative duration", []string{"--deadline", "1h", "--duration", "-5m", "--", "echo"}, "duration", false},
		{"negative max price", []string{"--deadline", "1h", "--max-price", "-1", "--", "echo"}, "max-price", false},
		{"absurd power", []string{"--deadline", "1h", "--power-w", "1e9", "--", "echo"}, "power-w", false},
		{"env not K=V", []string{"--deadline", "1h", "--env", "NOVALUE", "--", "echo"}, "env", false},
		{"env reserved name", []string{"--deadline", "1h", "--env", "GREENQ_REDIS_URL=x", "--", "echo"}, "env", false},
		{"env bad name", []string{"--deadline", "1h", "--env", "1X=y", "--", "echo"}, "env", false},
		{"env-file missing", []string{"--deadline", "1h", "--env-file", "/no/such/greenq.env", "--", "echo"}, "env-file", false},
		{"secret not K=NAME", []string{"--deadline", "1h", "--secret", "TOKEN", "--", "echo"}, "secret", false},
		{"secret name with slash", []string{"--deadline", "1h", "--secret", "TOKEN=../etc/shadow", "--", "echo"}, "secret", false},
		{"bad image", []string{"--deadline", "1h", "--image", "Not An Image", "--", "echo"}, "image", false},
		{"grace too long", []string{"--deadline", "1h", "--grace", "2h", "--", "echo"}, "grace", false},
		{"signal without time", []string{"--deadline", "1h", "--signal", "USR1", "--", "echo"}, "signal", false},
		{"signal unknown", []string{"--deadline", "1h", "--signal", "WINCH@5m", "--", "echo"}, "signal", false},
		{"unknown output", []string{"--deadline", "1h", "-o", "yaml", "--", "echo"}, "-o", false},
		{"unknown region", []string{"--deadline", "1h", "--regions", "mars-1", "--", "echo"}, "regions", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{}
			srv := httptest.NewServer(api)
			defer srv.Close()
			code, _, stderr := run(t, srv.URL, append([]string{"submit"}, tc.args...)...)
			require.Equal(t, 2, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tc.field)
			if !tc.server {
				require.Zero(t, api.posts.Load(), "refused input must not reach the server")
			}
		})
	}
}

func TestSubmitPrintsID(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&fakeAPI{})
	defer srv.Close()
	code, out, stderr := run(t, srv.URL, "submit", "--deadline", "3m", "--duration", "20s", "--", "sh", "-c", "echo hi")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "job-1\n", out)

	code, out, _ = run(t, srv.URL, "submit", "--deadline", "3m", "-o", "json", "--", "true")
	require.Equal(t, 0, code)
	var j greenq.Job
	require.NoError(t, json.Unmarshal([]byte(out), &j))
	require.Equal(t, []string{"true"}, j.Command)
}

func TestStatus(t *testing.T) {
	t.Parallel()
	exit := 0
	api := &fakeAPI{jobs: map[string]*greenq.Job{
		"ok":  {ID: "ok", State: greenq.StateSucceeded, Command: []string{"true"}, Run: &greenq.Run{Region: "uk-south", ExitCode: &exit}},
		"bad": {ID: "bad", State: greenq.StateFailed, Command: []string{"false"}},
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()

	code, out, _ := run(t, srv.URL, "status", "ok")
	require.Equal(t, 0, code)
	require.Contains(t, out, "succeeded")

	code, _, _ = run(t, srv.URL, "status", "bad", "--wait")
	require.Equal(t, 1, code, "waiting on a job that failed exits 1")

	code, _, stderr := run(t, srv.URL, "status", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no such job")

	code, _, _ = run(t, srv.URL, "status")
	require.Equal(t, 2, code, "missing id is bad usage")
}

func TestUnreachableAPI(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	code, _, stderr := run(t, url, "list")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "greenq dev")
}

func TestSparklineAndTail(t *testing.T) {
	t.Parallel()
	require.Equal(t, "▁▄█", sparkline([]float64{1, 2, 3}, 10))
	require.Equal(t, []rune("▁█"), []rune(sparkline([]float64{1, 1, 5, 5}, 2)))
	require.Equal(t, "", sparkline(nil, 5))
}

func TestChartLine(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s forecast.Series
	for i, v := range []float64{100, 50, 10, 80} {
		start := now.Add(time.Duration(i) * time.Hour)
		s.Points = append(s.Points, forecast.Point{Start: start, End: start.Add(time.Hour), GCO2PerKWh: v})
	}
	got := chartLine(s, []time.Time{now.Add(2*time.Hour + 10*time.Minute)}, now, 4, time.Hour)
	require.Equal(t, "█▄▁▆", got[0])
	require.Equal(t, "  ^", got[1], "the mark sits under the cleanest hour, where the job starts")
}

func TestSimulateMissingInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"simulate", "--workload", "w.csv"}, "carbon"},
		{[]string{"simulate", "--carbon", dir}, "workload"},
		{[]string{"simulate", "--carbon", dir + "/absent", "--workload", "w.csv"}, "carbon"},
		{[]string{"simulate", "--carbon", dir, "--workload", dir + "/absent.csv"}, "workload"},
		{[]string{"simulate", "--carbon", dir, "--workload", dir, "--forecast-noise", "2"}, "forecast-noise"},
	} {
		code, _, stderr := run(t, "http://127.0.0.1:1", tc.args...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.field)
	}
}
