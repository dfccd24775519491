package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBadSubmissionsRefused runs every bad submission through the real CLI
// against a real server: each exits 2 naming the field, and nothing is
// stored (the job list and Redis's keys are unchanged afterwards). Input the
// CLI cannot carry (NUL bytes: argv cannot hold them; malformed JSON) goes
// over HTTP and gets a 4xx naming the field.
func TestBadSubmissionsRefused(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	dir := t.TempDir()
	writeSeries(t, dir, time.Now().Truncate(time.Hour), time.Hour, "GB")
	cfg := writeConfig(t, stackConfig{Redis: r.URL(), FileDir: dir, Regions: []region{{Name: "gb", Zone: "GB"}}})
	srv := startServer(t, "server", cfg)
	srv.API.waitReady(t, false) // the API answers; no worker needed

	keysBefore := redisKeys(t, r)
	require.Empty(t, srv.API.jobs(t))

	long := strings.Repeat("n", 300)
	bigArg := strings.Repeat("a", 70<<10)
	var manyTags []string
	for i := range 40 {
		manyTags = append(manyTags, "--tag", fmt.Sprintf("k%d=v", i))
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name  string
		args  []string // after "submit"
		field string
	}{
		{"deadline in the past (RFC 3339)", []string{"--deadline", past, "--", "true"}, "deadline"},
		{"deadline in the past (negative duration)", []string{"--deadline", "-1h", "--", "true"}, "deadline"},
		{"deadline unparseable", []string{"--deadline", "tomorrow", "--", "true"}, "deadline"},
		{"deadline missing", []string{"--", "true"}, "deadline"},
		{"deadline shorter than duration", []string{"--deadline", "10m", "--duration", "1h", "--", "true"}, "deadline"},
		{"deadline absurdly far", []string{"--deadline", "100000h", "--", "true"}, "deadline"},
		{"deadline zero", []string{"--deadline", "0s", "--", "true"}, "deadline"},
		{"gpus zero", []string{"--deadline", "24h", "--gpus", "0", "--", "true"}, "gpus"},
		{"gpus negative", []string{"--deadline", "24h", "--gpus", "-2", "--", "true"}, "gpus"},
		{"gpus too many", []string{"--deadline", "24h", "--gpus", "5000", "--", "true"}, "gpus"},
		{"gpus not a number", []string{"--deadline", "24h", "--gpus", "two", "--", "true"}, "gpus"},
		{"unknown region", []string{"--deadline", "24h", "--regions", "mars", "--", "true"}, "regions"},
		{"one known, one unknown region", []string{"--deadline", "24h", "--regions", "gb,atlantis", "--", "true"}, "regions"},
		{"unknown kind", []string{"--deadline", "24h", "--kind", "dance", "--", "true"}, "kind"},
		{"no command", []string{"--deadline", "24h"}, "command"},
		{"empty program", []string{"--deadline", "24h", "--", ""}, "command"},
		{"command not UTF-8", []string{"--deadline", "24h", "--", "echo", "\xff\xfe"}, "command"},
		{"command too long", []string{"--deadline", "24h", "--", "echo", bigArg}, "command"},
		{"trials zero", []string{"--deadline", "24h", "--trials", "0", "--", "true"}, "trials"},
		{"trials negative", []string{"--deadline", "24h", "--trials", "-3", "--", "true"}, "trials"},
		{"trials too many", []string{"--deadline", "24h", "--trials", "5000", "--", "true"}, "trials"},
		{"duration negative", []string{"--deadline", "24h", "--duration", "-5m", "--", "true"}, "duration"},
		{"duration unparseable", []string{"--deadline", "24h", "--duration", "long", "--", "true"}, "duration"},
		{"name too long", []string{"--deadline", "24h", "--name", long, "--", "true"}, "name"},
		{"name not UTF-8", []string{"--deadline", "24h", "--name", "bad\xc3\x28", "--", "true"}, "name"},
		{"tag without =", []string{"--deadline", "24h", "--tag", "novalue", "--", "true"}, "tag"},
		{"too many tags", append(append([]string{"--deadline", "24h"}, manyTags...), "--", "true"), "tags"},
		{"max price negative", []string{"--deadline", "24h", "--max-price", "-1", "--", "true"}, "max-price"},
		{"power NaN", []string{"--deadline", "24h", "--power-w", "NaN", "--", "true"}, "power-w"},
		{"power absurd", []string{"--deadline", "24h", "--power-w", "20000", "--", "true"}, "power-w"},
		{"output format unknown", []string{"--deadline", "24h", "-o", "yaml", "--", "true"}, "-o"},
	}
	require.GreaterOrEqual(t, len(cases), 20)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, append([]string{"submit", "--api", srv.URL}, tc.args...)...)
			require.Equal(t, 2, code, "stdout %q stderr %q", out, errOut)
			require.Contains(t, errOut, tc.field, "the message names the field")
			require.Empty(t, strings.TrimSpace(out), "no job id printed")
		})
	}

	// Over HTTP, what argv cannot carry.
	deadline := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	httpCases := []struct {
		name  string
		body  string
		field string
	}{
		{"NUL byte in command", `{"command":["echo","a\u0000b"],"deadline":"` + deadline + `"}`, "command"},
		{"NUL byte in program", `{"command":["ec\u0000ho"],"deadline":"` + deadline + `"}`, "command"},
		{"NUL byte in name", `{"name":"x\u0000y","command":["true"],"deadline":"` + deadline + `"}`, "name"},
		{"malformed JSON", `{"command":["true"],"deadline":`, ""},
		{"unknown field", `{"command":["true"],"deadline":"` + deadline + `","gpu":2}`, "gpu"},
		{"negative duration", `{"command":["true"],"deadline":"` + deadline + `","duration_estimate_s":-1}`, "duration_estimate_s"},
		{"deadline a number", `{"command":["true"],"deadline":12}`, "deadline"},
	}
	for _, tc := range httpCases {
		t.Run("http "+tc.name, func(t *testing.T) {
			st, raw, err := srv.API.do("POST", "/v1/jobs", []byte(tc.body))
			require.NoError(t, err)
			require.GreaterOrEqual(t, st, 400, "%s", raw)
			require.Less(t, st, 500, "%s", raw)
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Field   string `json:"field"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
			if tc.field != "" {
				require.Contains(t, e.Error.Field+" "+e.Error.Message, tc.field, "%s", raw)
			}
		})
	}

	require.Empty(t, srv.API.jobs(t), "no bad submission was stored")
	require.Equal(t, keysBefore, redisKeys(t, r), "no key was written")
	code, out, _ := cli(t, "list", "--api", srv.URL, "-o", "json")
	require.Equal(t, 0, code)
	require.JSONEq(t, "[]", out)
}

// redisKeys lists the keys that hold jobs and their indexes (heartbeats,
// series and the leader lease change on their own and are left out).
func redisKeys(t *testing.T, r *redisServer) []string {
	t.Helper()
	c := r.Client()
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	var out []string
	for _, k := range keys {
		// The server's own bookkeeping (lease, heartbeats, forecasts, the
		// region facts it shares, the receipts it will restate) comes and
		// goes by itself.
		if strings.Contains(k, ":lease") || strings.Contains(k, ":workers") || strings.Contains(k, ":series:") ||
			strings.Contains(k, ":fence") || strings.HasSuffix(k, ":regions") || strings.HasSuffix(k, ":restate") ||
			strings.HasPrefix(k, "e2e:fill:") { // TestRedisFull's own fillers
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
