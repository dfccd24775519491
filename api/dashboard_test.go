package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenq/greenq/internal/testenv"
	"github.com/stretchr/testify/require"
)

// chromium returns the headless browser; without one the test fails under
// CI and skips elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (apt-get install chromium, or run `make test`, which does): dashboard end-to-end test not run")
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

	run := func(width int, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
			"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=10000", fmt.Sprintf("--window-size=%d,2400", width)}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC") // the dates below are UTC's
		out, err := cmd.Output()
		require.NoError(t, err, "chromium %v", args)
		return string(out)
	}
	dom := run(1280, "--dump-dom", ts.URL+"/")
	for _, want := range []string{
		`<path class="actual"`, `<path class="forecast"`, `class="job running"`, `class="job planned"`,
		`class="deadline"`, "resnet-finetune", "bert-sweep-t1", "nightly-infer", "llm-eval",
		`id="region-uk"`, `id="region-eu-central"`, `id="region-us-west"`, "jobs deferred", "gCO2e saved", `href="/report"`,
		`href="#log=d-4"`, `href="#job=d-1"`,
		// The legend says what each mark is.
		`data-key="history"`, "history (measured): solid", "forecast: dashed", "planned job", "running job", "deadline (tick)",
		// Units on the y axis, dates on the x axis (testNow is Sun 1 Mar 2026 12:00 UTC).
		`class="unit"`, ">gCO2e/kWh</text>", `class="tick date"`, ">Mon 2 Mar</text>", ">Tue 3 Mar</text>",
		// One chart with every region.
		`class="chart overview"`, `data-region="uk"`, `data-region="eu-central"`, `data-region="us-west"`, "Cleanest now:",
		// Finished jobs, with their receipts and links.
		`<tr data-job="d-5">`, "done-job", `href="#job=d-5"`, `href="#log=d-5"`, ">310 Wh<", ">82.1<", `<tr data-job="d-6">`, "broken-eval",
	} {
		require.Contains(t, dom, want)
	}
	require.NotContains(t, dom, "Could not load")
	require.NotRegexp(t, `\d(\.\d+)?e[-+]\d`, dom, "no exponents")

	// Every chart has the same y scale: "which region is greenest" reads
	// off the page.
	charts := regexp.MustCompile(`(?s)<svg class="chart[^"]*".*?</svg>`).FindAllString(dom, -1)
	require.Len(t, charts, 4, "the overview and one chart per region")
	yTicks := regexp.MustCompile(`text-anchor="end">([0-9.]+)</text>`)
	var scales []string
	for _, c := range charts {
		var ticks []string
		for _, m := range yTicks.FindAllStringSubmatch(c, -1) {
			ticks = append(ticks, m[1])
		}
		require.NotEmpty(t, ticks)
		scales = append(scales, strings.Join(ticks, ","))
	}
	for _, sc := range scales[1:] {
		require.Equal(t, scales[0], sc, "every region's chart shares the overview's scale")
	}

	// At 760 px the charts are drawn at the width shown, one SVG unit a
	// pixel, so their 12 px text stays 12 px.
	narrow := run(760, "--dump-dom", ts.URL+"/")
	m := regexp.MustCompile(`<svg class="chart overview" width="(\d+)" height="(\d+)" viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(narrow)
	require.NotNil(t, m, "the overview chart at 760 px")
	require.Equal(t, m[1], m[3], "drawn 1:1, not scaled down")
	w, _ := strconv.Atoi(m[1])
	require.LessOrEqual(t, w, 760)
	require.GreaterOrEqual(t, w, 600)

	// The log link opens the job's output in the page, as its own origin
	// fetches it.
	b.store.mu.Lock()
	b.store.logs["d-4"] = []byte("epoch 1 of nightly-infer <b>not markup</b>\n")
	b.store.mu.Unlock()
	dom = run(1280, "--dump-dom", ts.URL+"/#log=d-4")
	require.Contains(t, dom, "Log of d-4")
	require.Contains(t, dom, "epoch 1 of nightly-infer &lt;b&gt;not markup&lt;/b&gt;")
	require.Contains(t, dom, "running · following")

	// The job link shows the job with its receipt.
	dom = run(1280, "--dump-dom", ts.URL+"/#job=d-5")
	for _, want := range []string{"Job d-5", "python train.py", "310 Wh (estimate), PUE 1.1", "14 gCO2e", "82.1 gCO2e against running at once (96.1)", `href="#log=d-5"`} {
		require.Contains(t, dom, want)
	}

	dir := artifactDir(t)
	for _, width := range []int{1280, 760} {
		shot := filepath.Join(dir, fmt.Sprintf("dashboard-%d.png", width))
		run(width, "--screenshot="+shot, ts.URL+"/")
		st, err := os.Stat(shot)
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(10_000))
		t.Logf("dashboard screenshot: %s", shot)
	}
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
