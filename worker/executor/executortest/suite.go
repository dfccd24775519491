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
	// GPUs is how many GPUs one job may ask for (Spec.GPUCount) from an
	// executor that allocates them and reports capacity (Slurm,
	// Kubernetes); the capacity case runs a job of one GPU. 0: the cluster
	// has none, and the case checks capacity without a job.
	GPUs int
	// PutSecret stores a secret in the store of ex, an executor New made
	// that resolves secrets itself (executor.ResolvesSecrets: a Kubernetes
	// Secret); required for one.
	PutSecret func(t *testing.T, ex executor.Executor, name, value string)
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
		{"secrets arrive, and only in the job", testSecrets},
		{"capacity is reported, and counts the executor's own jobs", testCapacity},
		{"cancel (SIGTERM, then SIGKILL after the grace) ends the job", testCancel},
		{"a paused job's checkpoint is there when it resumes", testPauseResume},
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

// testSecrets: an executor that resolves secrets itself gets them by name
// (Spec.Secrets) from its store; for the others the worker resolves them
// (worker/secrets.go, from --secrets-dir) into Spec.Env, and what is
// checked is that the value arrives as given.
func testSecrets(t *testing.T, b bench) {
	const value = "s3cr3t-v@lue with spaces"
	s, out := b.spec(`printf 'key=[%s]\n' "$API_KEY"`)
	if r, ok := b.ex.(executor.ResolvesSecrets); ok && r.ResolvesSecrets() {
		require.NotNil(t, b.target.PutSecret, "Target.PutSecret is required for an executor that resolves secrets")
		b.target.PutSecret(t, b.ex, "suite-api-key", value)
		s.Secrets = map[string]string{"API_KEY": "suite-api-key"}
	} else {
		t.Log("this executor takes secrets resolved by the worker, in Spec.Env")
		s.Env = append(s.Env, "API_KEY="+value)
	}
	e := wait(t, b.start(t, s))
	require.Equal(t, 0, e.Code, out.String())
	require.Contains(t, out.String(), "key=["+value+"]")
}

// testCapacity: an executor on a cluster (executor.Capacity) reports
// consistent figures, and a job of its own counts as Busy while it runs
// and not after. For the others capacity is the worker's own GPU pool
// (worker.Config.GPUs), published by its heartbeat, which the worker's
// tests check.
func testCapacity(t *testing.T, b bench) {
	c, ok := b.ex.(executor.Capacity)
	if !ok {
		t.Log("this executor has no cluster: capacity is the worker's GPU pool (worker.Config.GPUs), checked by the worker's heartbeat tests")
		return
	}
	ctx := context.Background()
	check := func() executor.GPUCapacity {
		t.Helper()
		gc, err := c.GPUCapacity(ctx)
		require.NoError(t, err)
		require.True(t, 0 <= gc.Busy && gc.Busy <= gc.Offered && gc.Offered <= gc.Total, "%+v", gc)
		require.True(t, 0 <= gc.Largest && gc.Largest <= gc.Total, "%+v", gc)
		require.Equal(t, gc.Total > 0, gc.Largest > 0, "%+v", gc)
		return gc
	}
	before := check()
	require.Zero(t, before.Busy, "a new executor has no job in flight")
	if b.target.GPUs == 0 {
		require.Zero(t, before.Total, "Target.GPUs is 0: the cluster has no GPUs")
		return
	}
	require.GreaterOrEqual(t, before.Largest, b.target.GPUs)
	ready := filepath.Join(b.dir, "ready")
	s, out := b.spec(`touch "$0"; while :; do sleep 0.1; done`)
	s.Argv, s.GPUCount = append(s.Argv, ready), 1
	p := b.start(t, s)
	waitFile(t, ready)
	require.Equal(t, 1, check().Busy, "the running job's GPU")
	require.NoError(t, p.Signal(syscall.SIGKILL))
	wait(t, p)
	require.Eventually(t, func() bool { return check().Busy == 0 }, 30*time.Second, 50*time.Millisecond,
		"the ended job holds nothing: %s", out.String())
}

// testCancel: a cancel is the worker's stop, SIGTERM and, after the
// grace, SIGKILL; a job that exits on SIGTERM ends with its own status,
// one that ignores it with SIGKILL's.
func testCancel(t *testing.T, b bench) {
	for _, c := range []struct {
		name, trap string
		grace      time.Duration // the worker's wait before SIGKILL
		code       int
	}{
		{"exits on TERM", `trap 'echo cancelled; exit 143' TERM`, time.Minute, 143},
		{"ignores TERM", `trap '' TERM`, time.Second, 128 + int(syscall.SIGKILL)},
	} {
		ready := filepath.Join(b.dir, "ready-"+strings.ReplaceAll(c.name, " ", "-"))
		s, out := b.spec(c.trap + `; touch "$0"; while :; do sleep 0.1; done`)
		s.Argv = append(s.Argv, ready)
		s.Grace = c.grace
		p := b.start(t, s)
		waitFile(t, ready)
		require.NoError(t, p.Signal(syscall.SIGTERM), c.name)
		e := waitOrKill(t, p, c.grace)
		require.Equal(t, c.code, e.Code, "%s: %s", c.name, out.String())
	}
}

// waitOrKill waits for p for grace, then sends SIGKILL, as the worker
// does after a stop, and waits for the end.
func waitOrKill(t *testing.T, p executor.Process, grace time.Duration) executor.Exit {
	t.Helper()
	done := make(chan executor.Exit, 1)
	go func() { done <- p.Wait() }()
	select {
	case e := <-done:
		return e
	case <-time.After(grace):
	}
	require.NoError(t, p.Signal(syscall.SIGKILL))
	select {
	case e := <-done:
		return e
	case <-time.After(60 * time.Second):
		t.Fatal("the job did not end after SIGKILL")
	}
	return executor.Exit{}
}

// testPauseResume: a pause is SIGTERM, or the executor's own pause
// (executor.Pauser: a suspended Kubernetes Job); the job saves its
// checkpoint and exits, and its next run, a new Start as the worker makes
// for the next segment, finds it.
func testPauseResume(t *testing.T, b bench) {
	ready := filepath.Join(b.dir, "ready")
	ckpt := filepath.Join(b.dir, "ckpt")
	script := `ck="$1"; if [ -f "$ck" ]; then echo "resumed-from=$(cat "$ck")"; exit 0; fi
n=1; trap 'echo "$n" > "$ck"; echo "paused-at=$n"; exit 0' TERM; touch "$0"
while :; do n=$((n+1)); sleep 0.05; done`
	s, out := b.spec(script)
	s.Argv = append(s.Argv, ready, ckpt)
	p := b.start(t, s)
	waitFile(t, ready)
	if pz, ok := p.(executor.Pauser); ok {
		require.NoError(t, pz.Pause())
	} else {
		require.NoError(t, p.Signal(syscall.SIGTERM))
	}
	e := wait(t, p)
	require.Equal(t, 0, e.Code, out.String())
	saved, err := os.ReadFile(ckpt)
	require.NoError(t, err, "the job saved its checkpoint: %s", out.String())
	require.Contains(t, out.String(), "paused-at="+strings.TrimSpace(string(saved)))

	s2, out2 := b.spec(script)
	s2.Argv = append(s2.Argv, ready, ckpt)
	e = wait(t, b.start(t, s2))
	require.Equal(t, 0, e.Code, out2.String())
	require.Contains(t, out2.String(), "resumed-from="+strings.TrimSpace(string(saved)))
}
