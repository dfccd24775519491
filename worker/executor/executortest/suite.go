package executortest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/worker/executor"
)

// Target is the executor under test and how to run a shell in it.
type Target struct {
	// New returns the executor.
	New func(t *testing.T) executor.Executor
	// Image is set for executors that run images: one with a POSIX sh,
	// cat, env, pwd and sleep.
	Image string
	// Path is PATH for the commands (inside the image, for one).
	Path string
}

// Run runs the suite against target.
func Run(t *testing.T, target Target) {
	t.Helper()
	if target.Path == "" {
		target.Path = "/usr/local/bin:/usr/bin:/bin"
	}
	cases := []struct {
		name string
		run  func(t *testing.T, b bench)
	}{
		{"environment is exactly the one given", testEnvironment},
		{"runs in its working directory", testWorkdir},
		{"output and exit status come back", testExitStatus},
		{"SIGTERM reaches the job's handler", testTerm},
		{"SIGKILL ends a job that ignores SIGTERM", testKill},
		{"mounted directories are shared with the job", testMounts},
		{"a command that does not exist fails to start or exits non-zero", testMissingCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, bench{target: target, ex: target.New(t), dir: shareableDir(t)})
		})
	}
}

type bench struct {
	target Target
	ex     executor.Executor
	dir    string // a directory the job may use (mounted for containers)
}

// shareableDir is a temp dir every user may enter (a job may run as
// another user).
func shareableDir(t *testing.T) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	return d
}

// Output is a concurrency-safe buffer for Spec.Output, for executor
// tests of their own.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns what was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func (b bench) spec(script string, env ...string) (executor.Spec, *Output) {
	out := &Output{}
	return executor.Spec{JobID: "suite", Argv: []string{"sh", "-c", script}, Dir: b.dir,
		Env: append([]string{"PATH=" + b.target.Path}, env...), Output: out, Image: b.target.Image,
		Mounts: []executor.Mount{{Path: b.dir}}}, out
}

func (b bench) start(t *testing.T, s executor.Spec) executor.Process {
	t.Helper()
	p, err := b.ex.Start(context.Background(), s)
	require.NoError(t, err)
	return p
}

// Wait waits for p to end, failing t after limit.
func Wait(t *testing.T, p executor.Process, limit time.Duration) executor.Exit {
	t.Helper()
	done := make(chan executor.Exit, 1)
	go func() { done <- p.Wait() }()
	select {
	case e := <-done:
		return e
	case <-time.After(limit):
		t.Fatalf("the job did not end within %s", limit)
	}
	return executor.Exit{}
}

func wait(t *testing.T, p executor.Process) executor.Exit {
	t.Helper()
	return Wait(t, p, 60*time.Second)
}

// waitFile waits for the job to create path (the job's "I am ready"), so
// signals are not sent before its handler is installed.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not create %s within 60s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testEnvironment(t *testing.T, b bench) {
	s, out := b.spec(`env`, "FOO=bar baz", "SECRET_TOKEN=s3cr=t")
	e := wait(t, b.start(t, s))
	require.Equal(t, 0, e.Code, out.String())
	lines := strings.Split(out.String(), "\n")
	require.Contains(t, lines, "FOO=bar baz")
	require.Contains(t, lines, "SECRET_TOKEN=s3cr=t")
	// Nothing of the executor's own environment reaches the job (the test
	// process's variables stand in for the worker's secrets).
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !engineSets[name] {
			require.NotContains(t, lines, kv, "the executor's variable reached the job")
		}
	}
}

// engineSets are variables a shell or container engine sets in the job
// itself, which may equal the test process's by chance.
var engineSets = map[string]bool{"PATH": true, "TERM": true, "HOME": true, "PWD": true,
	"SHLVL": true, "HOSTNAME": true, "_": true, "container": true}

func testWorkdir(t *testing.T, b bench) {
	s, out := b.spec(`pwd`)
	require.Equal(t, 0, wait(t, b.start(t, s)).Code, out.String())
	require.Equal(t, b.dir, strings.TrimSpace(out.String()))
}

func testExitStatus(t *testing.T, b bench) {
	s, out := b.spec(`echo to-stdout; echo to-stderr >&2; exit 3`)
	e := wait(t, b.start(t, s))
	require.Equal(t, 3, e.Code)
	require.NoError(t, e.Err)
	require.Contains(t, out.String(), "to-stdout")
	require.Contains(t, out.String(), "to-stderr")
}

func testTerm(t *testing.T, b bench) {
	ready := filepath.Join(b.dir, "ready")
	s, out := b.spec(`trap 'echo got-TERM; exit 42' TERM; touch "$0"; while :; do sleep 0.1; done`)
	s.Argv = append(s.Argv, ready)
	p := b.start(t, s)
	waitFile(t, ready)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	e := wait(t, p)
	require.Equal(t, 42, e.Code, out.String())
	require.Contains(t, out.String(), "got-TERM")
}

func testKill(t *testing.T, b bench) {
	ready := filepath.Join(b.dir, "ready")
	s, out := b.spec(`trap '' TERM; touch "$0"; while :; do sleep 0.1; done`)
	s.Argv = append(s.Argv, ready)
	p := b.start(t, s)
	waitFile(t, ready)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.NoError(t, p.Signal(syscall.SIGKILL))
	e := wait(t, p)
	require.Equal(t, 128+int(syscall.SIGKILL), e.Code, out.String())
	// Signalling a job that has ended is not an error.
	require.NoError(t, p.Signal(syscall.SIGTERM))
}

func testMounts(t *testing.T, b bench) {
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "in"), []byte("from-the-host\n"), 0o644))
	s, out := b.spec(`cat in > out-copy`)
	require.Equal(t, 0, wait(t, b.start(t, s)).Code, out.String())
	got, err := os.ReadFile(filepath.Join(b.dir, "out-copy"))
	require.NoError(t, err)
	require.Equal(t, "from-the-host\n", string(got))
}

func testMissingCommand(t *testing.T, b bench) {
	s, _ := b.spec("")
	s.Argv = []string{"greenq-no-such-command"}
	p, err := b.ex.Start(context.Background(), s)
	if err != nil {
		require.Contains(t, err.Error(), "greenq-no-such-command")
		return
	}
	// 127 from a shell or runc; 1 from an init process that could not exec.
	require.NotEqual(t, 0, wait(t, p).Code)
}
