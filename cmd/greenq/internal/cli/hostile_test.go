package cli

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHostileUsage runs the CLI with bad flags and arguments: each exits 2
// (bad usage), names on stderr the flag or argument the user typed (never
// only the API's JSON field), and sends no request.
func TestHostileUsage(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "absent.env")
	submit := func(args ...string) []string { return append([]string{"submit"}, args...) }
	for _, tc := range []struct {
		name string
		args []string
		want string
		// notWant are the API's names for what a flag sets, which the
		// message must not use instead of the flag.
		notWant []string
	}{
		{"submit without --deadline", submit("--", "echo"), "deadline", nil},
		{"deadline tomorrow", submit("--deadline", "tomorrow", "--", "echo"), "deadline", nil},
		{"deadline far in the past", submit("--deadline", "1970-01-01T00:00:00Z", "--", "echo"), "deadline", nil},
		{"deadline a day ago", submit("--deadline", "-24h", "--", "echo"), "deadline", nil},
		{"gpus negative", submit("--deadline", "1h", "--gpus", "-1", "--", "echo"), "gpus", nil},
		{"gpus not a number", submit("--deadline", "1h", "--gpus", "abc", "--", "echo"), "--gpus", nil},
		{"trials zero", submit("--deadline", "1h", "--trials", "0", "--", "echo"), "trials", nil},
		{"trials not a number", submit("--deadline", "1h", "--trials", "many", "--", "echo"), "--trials", nil},
		{"duration not a duration", submit("--deadline", "1h", "--duration", "3 hours", "--", "echo"), "--duration", nil},
		{"duration absurd", submit("--deadline", "1h", "--duration", "1000000h", "--", "echo"), "duration", []string{"duration_estimate_s"}},
		{"unknown flag", submit("--deadline", "1h", "--gpu", "2", "--", "echo"), "--gpu", nil},
		{"regions empty", submit("--deadline", "1h", "--regions", "", "--", "echo"), "--regions", nil},
		{"regions with an empty entry", submit("--deadline", "1h", "--regions", "uk,,us-west", "--", "echo"), "--regions", nil},
		{"kind play", submit("--deadline", "1h", "--kind", "play", "--", "echo"), "kind", nil},
		{"max price negative", submit("--deadline", "1h", "--max-price", "-1", "--", "echo"), "max-price", []string{"max_price_usd_per_gpu_hour"}},
		{"power negative", submit("--deadline", "1h", "--power-w", "-5", "--", "echo"), "power-w", []string{"power_w"}},
		{"functional unit too long", submit("--deadline", "1h", "--functional-unit", strings.Repeat("u", 300), "--", "echo"), "functional-unit", []string{"functional_unit"}},
		{"env file missing", submit("--deadline", "1h", "--env-file", missing, "--", "echo"), "env-file", nil},
		{"output yaml on submit", submit("--deadline", "1h", "-o", "yaml", "--", "echo"), "-o", nil},
		{"output yaml on status", []string{"status", "-o", "yaml", "j-1"}, "-o", nil},
		{"output yaml on list", []string{"list", "-o", "yaml"}, "-o", nil},
		{"status without id", []string{"status"}, "job IDs", nil},
		{"status with ids and a group", []string{"status", "j-1", "--group", "g-1"}, "--group", nil},
		{"cancel without id", []string{"cancel"}, "--group", nil},
		{"status of a bad second id", []string{"status", "j-1", ".."}, "ID", nil},
		{"status of dot", []string{"status", "."}, "ID", nil},
		{"status of a very long id", []string{"status", strings.Repeat("j", 129)}, "ID", nil},
		{"status of invalid UTF-8", []string{"status", "j\xff"}, "ID", nil},
		{"cancel an id with a slash", []string{"cancel", "../j-other"}, "ID", nil},
		{"cancel dot dot", []string{"cancel", ".."}, "ID", nil},
		{"cancel an empty id", []string{"cancel", ""}, "ID", nil},
		{"logs of a path", []string{"logs", "j-1/../../metrics"}, "ID", nil},
		{"api without a scheme", []string{"--api", "localhost:8080", "list"}, "--api", nil},
		{"api of another scheme", []string{"--api", "file:///etc/passwd", "list"}, "--api", nil},
		{"api without a host", []string{"--api", "http://", "status", "j-1"}, "--api", nil},
		{"api not a URL", []string{"--api", "://nowhere", "cancel", "j-1"}, "--api", nil},
		{"list state unknown", []string{"list", "--state", "sleeping"}, "state", nil},
		{"forecast without region", []string{"forecast"}, "region", nil},
		{"forecast hours zero", []string{"forecast", "--region", "uk", "--hours", "0"}, "hours", nil},
		{"unknown command", []string{"submitt", "--deadline", "1h"}, "unknown command", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Error(w, "this request should not have been sent", http.StatusTeapot)
			}))
			defer srv.Close()
			code, stdout, stderr := run(t, srv.URL, tc.args...)
			require.Equal(t, 2, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tc.want)
			for _, name := range tc.notWant {
				require.NotContains(t, stderr, name, "name the flag, not the API field")
			}
			require.Empty(t, stdout)
			require.Zero(t, hits.Load(), "refused usage must not reach the API")
		})
	}
}
