package jobfiles

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// locations are the two kinds: a shared directory used in place, and an
// object store (gocloud's file:// driver, as s3:// behaves).
func locations(t *testing.T) map[string]*Location {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Location{}
	for name, raw := range map[string]string{
		"shared directory": t.TempDir(),
		"object store":     "file://" + t.TempDir(),
	} {
		l, err := Open(ctx, raw)
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		out[name] = l
	}
	return out
}

func write(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
}

// A checkpoint saved by one worker is what the next worker pulls, wherever
// it runs; deletions are mirrored; another job's files are untouched.
func TestCheckpointFollowsTheJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, l := range locations(t) {
		t.Run(name, func(t *testing.T) {
			a := l.Dir("job-1", t.TempDir()) // worker A's run
			require.NoError(t, l.Pull(ctx, "job-1", a))
			write(t, a, "step", "15\n")
			write(t, a, "weights/layer0.bin", "w0")
			write(t, a, "old", "x")
			require.NoError(t, l.Push(ctx, "job-1", a))
			require.NoError(t, os.Remove(filepath.Join(a, "old")))
			require.NoError(t, l.Push(ctx, "job-1", a))

			b := l.Dir("job-1", t.TempDir()) // worker B, later
			require.NoError(t, l.Pull(ctx, "job-1", b))
			got, err := os.ReadFile(filepath.Join(b, "step"))
			require.NoError(t, err)
			require.Equal(t, "15\n", string(got))
			files, err := l.List(ctx, "job-1")
			require.NoError(t, err)
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
			}
			require.Equal(t, []string{"step", "weights/layer0.bin"}, paths)

			other := l.Dir("job-2", t.TempDir())
			require.NoError(t, l.Pull(ctx, "job-2", other))
			write(t, other, "step", "3\n")
			require.NoError(t, l.Push(ctx, "job-2", other))
			jobs, err := l.Jobs(ctx)
			require.NoError(t, err)
			require.Contains(t, jobs, "job-1")
			require.Contains(t, jobs, "job-2")

			require.NoError(t, l.Delete(ctx, "job-1"))
			files, err = l.List(ctx, "job-1")
			require.NoError(t, err)
			require.Empty(t, files)
			files, err = l.List(ctx, "job-2")
			require.NoError(t, err)
			require.Len(t, files, 1, "another job's files are untouched")
		})
	}
}

// Outputs accumulate across runs; a client fetches them from the record's
// location alone.
func TestOutputsUploadAndFetch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, l := range locations(t) {
		t.Run(name, func(t *testing.T) {
			run1 := l.Dir("job-9", t.TempDir())
			require.NoError(t, os.MkdirAll(run1, 0o755))
			write(t, run1, "model.pt", "m1")
			require.NoError(t, l.Upload(ctx, "job-9", run1))
			run2 := l.Dir("job-9", t.TempDir())
			if !l.Shared() {
				write(t, run2, "metrics.json", "{}")
				require.NoError(t, l.Upload(ctx, "job-9", run2))
			} else {
				write(t, run2, "metrics.json", "{}")
			}
			root, ok := Root(l.Where("job-9"), "job-9")
			require.True(t, ok, l.Where("job-9"))
			client, err := Open(ctx, root)
			require.NoError(t, err)
			defer client.Close()
			dst := t.TempDir()
			require.NoError(t, client.Fetch(ctx, "job-9", dst))
			for f, body := range map[string]string{"model.pt": "m1", "metrics.json": "{}"} {
				got, err := os.ReadFile(filepath.Join(dst, f))
				require.NoError(t, err, f)
				require.Equal(t, body, string(got))
			}
		})
	}
}

func TestOpenRefusesRelativePaths(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "relative/dir", "nosuchscheme://bucket"} {
		_, err := Open(context.Background(), bad)
		require.Error(t, err, bad)
	}
}

func TestSafeJoinStaysInside(t *testing.T) {
	t.Parallel()
	for rel, want := range map[string]string{"a/b": "/d/a/b", "../../etc/passwd": "/d/etc/passwd", "/abs": "/d/abs"} {
		got, err := safeJoin("/d", rel)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := safeJoin("/d", "..")
	require.Error(t, err)
}
