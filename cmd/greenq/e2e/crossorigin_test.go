package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestCrossOriginPageCannotUseDevAPI is the issue "any web page can run
// commands on a greenq dev machine", replayed with a real browser against a
// real `greenq dev` (no tokens, embedded Redis): a page served from another
// port of 127.0.0.1 (another origin of the same site, as any page on
// localhost is) tries every request a browser sends cross-origin without
// asking first, plus the CORS ones that need the server's consent. Nothing
// it sends may create or cancel a job, and nothing it reads may show one.
//
// The positive control is a second `greenq dev` whose api.allowed_origins
// lists the page's origin: the same page can then read the job list and
// submit with application/json, so a browser run that detected nothing
// (page not loaded, script broken) cannot pass for a refusal.
func TestCrossOriginPageCannotUseDevAPI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cross-origin browser test skipped in -short mode")
	}
	browser := xoChromium(t)

	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(xoAttackPage))
	}))
	t.Cleanup(attacker.Close)
	attackerOrigin := attacker.URL // http://127.0.0.1:PORT

	// The allowed stack's config names the page's origin and nothing else:
	// no regions (demo ones are filled in), default Redis (embedded).
	allowCfg := filepath.Join(t.TempDir(), "greenq.yaml")
	require.NoError(t, os.WriteFile(allowCfg,
		fmt.Appendf(nil, "api:\n  allowed_origins: [%q]\n", attackerOrigin), 0o644))

	guarded := xoStartDev(t, "dev-guarded")
	allowed := xoStartDev(t, "dev-allowed", "--config", allowCfg)

	// A job submitted the legitimate way (Go sends no Origin): long, with a
	// far deadline, so it is still there, not final, when the page runs.
	seed := greenq.SubmitRequest{Name: "seeded", Command: []string{"sleep", "600"},
		DurationEstimateS: 3600, Deadline: "48h"}
	seeded := guarded.API.submit(t, seed)[0].ID
	allowedSeeded := allowed.API.submit(t, seed)[0].ID

	// ---- the same requests from Go, where the answers can be read ----
	t.Run("refusals over HTTP", func(t *testing.T) {
		body := fmt.Appendf(nil, `{"command":["sh","-c","id > %s"],"deadline":"2m"}`,
			filepath.Join(t.TempDir(), "pwned"))
		for _, c := range []struct {
			name        string
			method      string
			path        string
			header      map[string]string
			host        string
			status      int
			field       string
			allowOrigin bool
		}{
			{name: "text/plain body, no Origin", method: "POST", path: "/v1/jobs",
				header: map[string]string{"Content-Type": "text/plain"}, status: 415, field: "Content-Type"},
			{name: "form body, no Origin", method: "POST", path: "/v1/jobs",
				header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, field: "Content-Type"},
			{name: "JSON from a foreign Origin", method: "POST", path: "/v1/jobs",
				header: map[string]string{"Content-Type": "application/json", "Origin": attackerOrigin}, status: 403, field: "Origin"},
			{name: "JSON marked same-site, no Origin", method: "POST", path: "/v1/jobs",
				header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, status: 403, field: "Sec-Fetch-Site"},
			{name: "JSON under a rebound name", method: "POST", path: "/v1/jobs", host: "attacker.example:8080",
				header: map[string]string{"Content-Type": "application/json"}, status: 403, field: "Host"},
			{name: "GET from a foreign Origin", method: "GET", path: "/v1/jobs",
				header: map[string]string{"Origin": attackerOrigin, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}, status: 403, field: "Origin"},
			{name: "preflight from a foreign Origin", method: "OPTIONS", path: "/v1/jobs",
				header: map[string]string{"Origin": attackerOrigin, "Access-Control-Request-Method": "POST",
					"Access-Control-Request-Headers": "content-type"}, status: 403, field: "Origin"},
		} {
			var rd *bytes.Reader
			if c.method == "POST" {
				rd = bytes.NewReader(body)
			} else {
				rd = bytes.NewReader(nil)
			}
			req, err := http.NewRequest(c.method, guarded.URL+c.path, rd)
			require.NoError(t, err)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if c.host != "" {
				req.Host = c.host
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, c.name)
			var doc struct {
				Error *greenq.Error `json:"error"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			require.Equal(t, c.status, resp.StatusCode, c.name)
			require.NoError(t, derr, c.name)
			require.NotNil(t, doc.Error, c.name)
			require.Equal(t, c.field, doc.Error.Field, "%s: %s", c.name, doc.Error.Message)
			require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "%s: no CORS grant", c.name)
		}
		// A listed origin gets its grant (the allowed stack), an unlisted
		// one none: the preflight is answered for the listed one only.
		req, _ := http.NewRequest("OPTIONS", allowed.URL+"/v1/jobs", nil)
		req.Header.Set("Origin", attackerOrigin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Equal(t, attackerOrigin, resp.Header.Get("Access-Control-Allow-Origin"))

		jobs := guarded.API.jobs(t)
		require.Len(t, jobs, 1, "only the seeded job is stored")
		require.Equal(t, seeded, jobs[0].ID)
	})

	// ---- the page, in Chromium ----
	pageURL := func(api, id, marker string) string {
		return attackerOrigin + "/?" + url.Values{"api": {api}, "id": {id}, "marker": {marker}}.Encode()
	}

	t.Run("guarded dev refuses the page", func(t *testing.T) {
		markerDir := t.TempDir()
		marker := filepath.Join(markerDir, "pwned")
		dom := xoDumpDOM(t, browser, pageURL(guarded.URL, seeded, marker))
		t.Logf("page outcomes against the guarded dev:\n%s", xoOutcomes(dom))

		require.Contains(t, dom, "done", "the page's script ran to its end")
		for _, line := range []string{
			"nocors-post-text: sent", "nocors-post-form: sent", "form-post: submitted",
			"cors-post-json: blocked", "cors-get-list: blocked", "cors-get-job: blocked", "nocors-cancel: sent",
		} {
			require.Contains(t, dom, line)
		}
		require.NotContains(t, dom, ": read", "no cross-origin read succeeded")
		require.NotContains(t, dom, ": status", "no cross-origin response was readable")
		require.NotContains(t, dom, seeded, "the seeded job's id did not reach the page")
		for _, s := range []string{`"jobs"`, `"state"`, `"submitted_at"`, `"tenant"`} {
			require.NotContains(t, dom, s, "no job JSON reached the page")
		}

		jobs := guarded.API.jobs(t)
		require.Len(t, jobs, 1, "the page stored no job: %s", xoJobNames(jobs))
		require.Equal(t, seeded, jobs[0].ID)
		require.NotEqual(t, greenq.StateCancelled, guarded.API.mustJob(t, seeded).State, "the page did not cancel the seeded job")
		_, err := os.Stat(marker)
		require.True(t, os.IsNotExist(err), "the page's command did not run (marker %s: %v)", marker, err)
		entries, _ := os.ReadDir(markerDir)
		require.Empty(t, entries)
	})

	t.Run("a listed origin can use the API (control)", func(t *testing.T) {
		// A command that leaves nothing behind: this stack may run it.
		dom := xoDumpDOM(t, browser, pageURL(allowed.URL, allowedSeeded, os.DevNull))
		t.Logf("page outcomes against the dev that lists the page's origin:\n%s", xoOutcomes(dom))

		require.Contains(t, dom, "done", "the page's script ran to its end")
		require.Contains(t, dom, "cors-get-list: read 200")
		require.Contains(t, dom, "cors-get-job: read 200")
		require.Contains(t, dom, allowedSeeded, "the listed page read the seeded job")
		require.Contains(t, dom, "cors-post-json: status 201")
		// A listed origin still cannot send text/plain or form bodies (415
		// for everyone), so its JSON submission is the only new job; its
		// body-less cancel is accepted, as it should be from a listed origin.
		jobs := allowed.API.jobs(t)
		require.Len(t, jobs, 2, "the seeded job and the page's JSON submission only: %s", xoJobNames(jobs))
		require.Equal(t, greenq.StateCancelled, allowed.API.mustJob(t, allowedSeeded).State,
			"the listed page's no-cors cancel reached the API")
	})
}

// xoAttackPage is the attacker's page. Its parameters come from the query
// string, not the markup, so that the dumped DOM shows only what the
// script could read (the seeded job's id must not be in it by any other
// way). Each attempt writes one line "name: outcome" into #out.
const xoAttackPage = `<!doctype html>
<html><head><title>totally harmless</title></head>
<body>
<pre id="out"></pre>
<iframe name="sink" id="sink" style="display:none"></iframe>
<script>
const q = new URLSearchParams(location.search);
const api = q.get("api"), id = q.get("id"), marker = q.get("marker");
const out = document.getElementById("out");
const log = (name, what) => { out.textContent += name + ": " + what + "\n"; };
const payload = JSON.stringify({command: ["sh", "-c", "id > " + marker], deadline: "2m"});

async function attempt(name, f) {
  try { log(name, await f()); }
  catch (e) { log(name, "blocked " + e.name); }
}

function formPost() {
  return new Promise(resolve => {
    const frame = document.getElementById("sink");
    const timer = setTimeout(() => resolve("submitted (no load event)"), 3000);
    frame.addEventListener("load", () => { clearTimeout(timer); resolve("submitted"); }, {once: true});
    const f = document.createElement("form");
    f.method = "POST";
    f.action = api + "/v1/jobs";
    f.enctype = "text/plain";
    f.target = "sink";
    // text/plain form encoding writes name=value CRLF: with this name and
    // value the body is the JSON document {"command":...,"name":"="}.
    const i = document.createElement("input");
    i.type = "hidden";
    i.name = payload.slice(0, -1) + ',"name":"';
    i.value = '"}';
    f.appendChild(i);
    document.body.appendChild(f);
    f.submit();
    f.remove(); // the form data is taken; keep the payload out of the DOM
  });
}

(async () => {
  await attempt("nocors-post-text", async () => {
    const r = await fetch(api + "/v1/jobs", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: payload});
    return "sent " + r.type;
  });
  await attempt("nocors-post-form", async () => {
    const r = await fetch(api + "/v1/jobs", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams({command: "sh", deadline: "2m", json: payload})});
    return "sent " + r.type;
  });
  await attempt("form-post", formPost);
  await attempt("cors-post-json", async () => {
    const r = await fetch(api + "/v1/jobs", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({command: ["true"], deadline: "2m"})});
    return "status " + r.status;
  });
  await attempt("cors-get-list", async () => {
    const r = await fetch(api + "/v1/jobs");
    return "read " + r.status + " " + await r.text();
  });
  await attempt("cors-get-job", async () => {
    const r = await fetch(api + "/v1/jobs/" + encodeURIComponent(id));
    return "read " + r.status + " " + await r.text();
  });
  await attempt("nocors-cancel", async () => {
    const r = await fetch(api + "/v1/jobs/" + encodeURIComponent(id) + "/cancel",
      {method: "POST", mode: "no-cors"});
    return "sent " + r.type;
  });
  log("done", "all attempts made");
})();
</script>
</body></html>
`

// xoChromium returns Debian's chromium; its absence fails the test (make
// test installs it) rather than skipping it unseen.
func xoChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: `make test` installs it (Debian package chromium); " +
		"this test proves a cross-origin page cannot drive the API in a real browser (run with -short to leave it out)")
	return ""
}

// xoStartDev runs `greenq dev` (embedded Redis, demo regions) on a free
// port and waits until the API answers.
func xoStartDev(t *testing.T, name string, args ...string) *server {
	t.Helper()
	port := freePort(t)
	args = append([]string{"dev", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	p := startProc(t, name, greenqBin, args...)
	s := &server{proc: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.API = newAPI(s.URL)
	waitFor(t, 20*time.Second, name+" to serve /healthz", func() bool {
		require.True(t, p.Running(), "%s exited:\n%s", name, tail(p.Log(), 3000))
		st, _, err := s.API.do("GET", "/healthz", nil)
		return err == nil && st == http.StatusOK
	})
	return s
}

// xoDumpDOM loads page in headless Chromium and returns the DOM once the
// page's virtual time budget is spent.
func xoDumpDOM(t *testing.T, browser, page string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000",
		"--dump-dom", page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", tail(stderr.String(), 3000))
	return string(out)
}

// xoOutcomes is the text of the page's #out, each line cut to 200 bytes
// for the log.
func xoOutcomes(dom string) string {
	_, after, ok := strings.Cut(dom, `<pre id="out">`)
	if !ok {
		return "(no #out in the DOM)\n" + tail(dom, 2000)
	}
	text, _, _ := strings.Cut(after, "</pre>")
	var lines []string
	for l := range strings.Lines(text) {
		l = strings.TrimSpace(l)
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func xoJobNames(jobs []*greenq.Job) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s %q %v; ", j.ID, j.Name, j.Command)
	}
	return b.String()
}
