package api

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenq/greenq/internal/testenv"
	"github.com/stretchr/testify/require"
)

// liveServer serves a fresh fake store (jobs advance one state per read)
// over HTTP with the test tokens.
func liveServer(t *testing.T, cfg Config) (*httptest.Server, *fakeStore) {
	t.Helper()
	b := setup(t, cfg)
	b.store.advance = true
	ts := httptest.NewServer(b.srv.Handler())
	t.Cleanup(ts.Close)
	return ts, b.store
}

func python(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" is not installed (apt-get install python3): Python client tests not run")
	}
	return p
}

// TestPythonClient runs the client's unittest suite against a live server.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	py := python(t, "python3")
	ts, _ := liveServer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "unittest", "-v", "test_greenq")
	cmd.Dir = "python"
	cmd.Env = append(os.Environ(), "GREENQ_API_URL="+ts.URL, "GREENQ_TOKEN="+aliceToken,
		"GREENQ_OTHER_TOKEN="+bobToken, "GREENQ_ADMIN_TOKEN="+adminToken, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err, "python client tests failed")
}

// TestPythonClientInstalls installs the client the way Python users
// expect, pip install ./api/python (offline: it needs nothing beyond the
// standard library), and imports it from elsewhere.
func TestPythonClientInstalls(t *testing.T) {
	t.Parallel()
	// An offline install builds with the interpreter's own setuptools and
	// wheel (pip's build isolation would fetch them).
	py := ""
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(name); err == nil && exec.Command(p, "-c", "import setuptools.build_meta, wheel").Run() == nil &&
			exec.Command(p, "-m", "pip", "--version").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		testenv.Missing(t, "no python3 with pip, setuptools and wheel (apt-get install python3-pip python3-setuptools python3-wheel): install test not run")
	}
	// Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
	src, target := filepath.Join(t.TempDir(), "python"), t.TempDir()
	require.NoError(t, os.MkdirAll(src, 0o755))
	for _, name := range []string{"pyproject.toml", "README.md", "greenq.py"} {
		b, err := os.ReadFile(filepath.Join("python", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(src, name), b, 0o644))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, py, "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation",
		"--disable-pip-version-check", "--target", target, src)
	install.Env = append(os.Environ(), "PIP_NO_INPUT=1")
	out, err := install.CombinedOutput()
	require.NoError(t, err, "pip install: %s", out)
	check := exec.CommandContext(ctx, py, "-c", "import greenq; print(greenq.__file__, greenq.__version__)")
	check.Dir = t.TempDir()
	check.Env = append(os.Environ(), "PYTHONPATH="+target, "PYTHONDONTWRITEBYTECODE=1")
	out, err = check.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), filepath.Join(target, "greenq.py"))
	meta, err := filepath.Glob(filepath.Join(target, "greenq-*.dist-info", "METADATA"))
	require.NoError(t, err)
	require.Len(t, meta, 1, "installed as a distribution")
	b, err := os.ReadFile(meta[0])
	require.NoError(t, err)
	require.NotContains(t, string(b), "Requires-Dist", "no dependencies")
}

// TestNotebookExecutes runs the demo notebook with Debian's Jupyter
// (run_notebook.sh) against a live server; any cell error fails it.
func TestNotebookExecutes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("notebook execution skipped in -short mode")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import nbconvert, nbclient, ipykernel").Run(); err != nil {
		testenv.Missing(t, "/usr/bin/python3 cannot import nbconvert, nbclient and ipykernel (apt-get install python3-nbclient python3-ipykernel jupyter-nbconvert, or run `make test`, which does): notebook test not run")
	}
	ts, _ := liveServer(t, Config{Tokens: []Token{}})
	out := artifactDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "python/run_notebook.sh", ts.URL, out)
	cmd.Env = append(os.Environ(), "GREENQ_TOKEN=")
	b, err := cmd.CombinedOutput()
	t.Logf("%s", b)
	require.NoError(t, err, "notebook failed")
	require.FileExists(t, out+"/greenq_demo.executed.ipynb")
}
