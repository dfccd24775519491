package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chromium returns the headless browser, skipping the test without one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium; the Makefile does): dashboard end-to-end test skipped")
	return ""
}

// artifactDir is where tests keep screenshots: $GREENQ_ARTIFACTS, or the
// test's temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("GREENQ_ARTIFACTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	if testing.Short() {
		t.Skip("dashboard end-to-end test skipped in -short mode")
	}
	b := setup(t, Config{Tokens: []Token{}})
	b.store.seedDashboard(LocalTenant)
	ts := httptest.NewServer(b.srv.Handler())
	t.Cleanup(ts.Close)

	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
			"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=10000", "--window-size=1280,1500"}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		out, err := cmd.Output()
		require.NoError(t, err, "chromium %v", args)
		return string(out)
	}
	dom := run("--dump-dom", ts.URL+"/")
	for _, want := range []string{
		`<path class="actual"`, `<path class="forecast"`, `class="job running"`, `class="job planned"`,
		`class="deadline"`, "resnet-finetune", "bert-sweep-t1", "nightly-infer", "llm-eval",
		`id="region-uk"`, `id="region-eu-central"`, `id="region-us-west"`, "jobs deferred", "gCO2e saved", `href="/report"`,
		`href="#log=d-4"`,
	} {
		require.Contains(t, dom, want)
	}
	require.NotContains(t, dom, "Could not load")

	// The log link opens the job's output in the page, as its own origin
	// fetches it.
	b.store.mu.Lock()
	b.store.logs["d-4"] = []byte("epoch 1 of nightly-infer <b>not markup</b>\n")
	b.store.mu.Unlock()
	dom = run("--dump-dom", ts.URL+"/#log=d-4")
	require.Contains(t, dom, "Log of d-4")
	require.Contains(t, dom, "epoch 1 of nightly-infer &lt;b&gt;not markup&lt;/b&gt;")
	require.Contains(t, dom, "running · following")

	shot := filepath.Join(artifactDir(t), "dashboard.png")
	run("--screenshot="+shot, ts.URL+"/")
	st, err := os.Stat(shot)
	require.NoError(t, err)
	require.Greater(t, st.Size(), int64(10_000))
	t.Logf("dashboard screenshot: %s", shot)
}

func TestDashboardAssets(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for path, want := range map[string]string{"/": "<svg", "/assets/app.js": "createElementNS", "/assets/style.css": "svg.chart"} {
		res := b.do(t, "GET", path, "", nil)
		require.Equal(t, http.StatusOK, res.Status, path)
		if path == "/" {
			want = "/assets/app.js"
		}
		require.True(t, strings.Contains(string(res.Body), want), path)
	}
}
