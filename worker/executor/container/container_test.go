package container_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/internal/testenv"
	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/container"
	"github.com/greenq/greenq/worker/executor/executortest"
)

// EnvImage names the test image `make test` builds with podman import: a
// busybox rootfs with a /MARKER file.
const EnvImage = "GREENQ_TEST_IMAGE"

func TestMain(m *testing.M) {
	os.Setenv("GREENQ_REDIS_URL", "redis://:worker-password@10.0.0.1:6379/0")
	os.Exit(m.Run())
}

// testImage returns the image, failing under CI and skipping elsewhere when
// make test has not built it.
func testImage(t *testing.T) string {
	t.Helper()
	img := os.Getenv(EnvImage)
	if img == "" {
		msg := EnvImage + " is not set: run `make test`, which installs podman and builds the test image"
		testenv.Missing(t, msg)
	}
	return img
}

func newExecutor(t *testing.T) *container.Executor {
	t.Helper()
	e, err := container.New(container.Config{})
	require.NoError(t, err)
	return e
}

func TestContainerExecutor(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	executortest.Run(t, executortest.Target{
		New:   func(t *testing.T) executor.Executor { return newExecutor(t) },
		Image: img, Path: "/bin",
	})
}

// The command runs inside the image, not on the host: it sees the image's
// marker file, and the container is removed afterwards.
func TestRunsInTheImage(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	e := newExecutor(t)
	var out strings.Builder
	p, err := e.Start(t.Context(), executor.Spec{JobID: "marker", Argv: []string{"cat", "/MARKER"},
		Env: []string{"PATH=/bin"}, Image: img, Output: &out})
	require.NoError(t, err)
	require.Equal(t, 0, p.Wait().Code, out.String())
	require.Equal(t, "greenq-test-image", strings.TrimSpace(out.String()))
	ps, err := exec.Command(e.Engine(), "ps", "--all", "--filter", "label=greenq.job=marker", "--format", "{{.Names}}").Output()
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(ps)), "the container is removed")
}

// A value the engine's env file cannot carry is refused, not cut.
func TestRefusesMultiLineValues(t *testing.T) {
	t.Parallel()
	img := testImage(t)
	_, err := newExecutor(t).Start(t.Context(), executor.Spec{JobID: "x", Argv: []string{"true"},
		Env: []string{"KEY=line1\nline2"}, Image: img})
	require.ErrorContains(t, err, "KEY")
}

// GPUs reach the container by CDI where a spec exists, else only
// CUDA_VISIBLE_DEVICES (set by the worker) says which.
func TestGPUMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := container.New(container.Config{CDIDirs: []string{dir}})
	require.NoError(t, err)
	want := container.GPUModeNone
	if strings.Contains(e.Engine(), "docker") {
		want = container.GPUModeDocker
	}
	require.Equal(t, want, e.GPUMode())
	require.NoError(t, os.WriteFile(dir+"/nvidia.yaml", []byte("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n"), 0o644))
	e, err = container.New(container.Config{CDIDirs: []string{dir}})
	require.NoError(t, err)
	require.Equal(t, container.GPUModeCDI, e.GPUMode())
	_, err = container.New(container.Config{GPUMode: "magic"})
	require.ErrorContains(t, err, "magic")
}
