package api

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

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
		t.Skipf("%s is not installed: Python client tests skipped", name)
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

// TestNotebookExecutes runs the demo notebook with Debian's Jupyter
// (run_notebook.sh) against a live server; any cell error fails it.
func TestNotebookExecutes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("notebook execution skipped in -short mode")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import nbconvert, nbclient, ipykernel").Run(); err != nil {
		t.Skip("Debian's python3-nbclient python3-ipykernel jupyter-nbconvert are not installed: notebook test skipped")
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
