package worker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// workerEnv is a worker's own environment as a systemd unit loads it from
// greenq.env: a Redis password and provider tokens among ordinary variables.
var workerEnv = map[string]string{
	"PATH":                         "/usr/local/bin:/usr/bin:/bin",
	"HOME":                         "/var/lib/greenq",
	"USER":                         "greenq",
	"LANG":                         "en_GB.UTF-8",
	"GREENQ_REDIS_URL":             "redis://:redis-pass-9f2@10.1.2.3:6379/0",
	"GREENQ_ELECTRICITYMAPS_TOKEN": "em-token-77a1",
	"GREENQ_WATTTIME_PASSWORD":     "wt-pass-c3d4",
	"AWS_SECRET_ACCESS_KEY":        "aws-secret-5e6f",
	"HF_HOME":                      "/shared/hf-cache",
}

func workerGetenv(name string) string { return workerEnv[name] }

// runEnv runs `env` as job j on a worker with the environment above and
// returns the job's log and its finish report.
func runEnv(t *testing.T, mod func(*Config), j greenq.Job) (string, finishCall) {
	t.Helper()
	b := setup(t, func(c *Config) {
		c.Getenv = workerGetenv
		if mod != nil {
			mod(c)
		}
	})
	if j.Command == nil {
		j.Command = []string{"env"}
	}
	id := b.submit(t, j)
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	return b.fs.log(id), f
}

func envLines(log string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(log, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestJobEnvironmentIsBuiltNotInherited(t *testing.T) {
	t.Parallel()
	secrets := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "wandb-key"), []byte("wandb-value-1234\n"), 0o600))
	log, f := runEnv(t, func(c *Config) { c.PassEnv = []string{"HF_HOME"}; c.SecretsDir = secrets },
		greenq.Job{Trial: 2, JobSpec: greenq.JobSpec{Env: map[string]string{"LR": "0.01", "EPOCHS": "3"},
			Secrets: map[string]string{"WANDB_API_KEY": "wandb-key"}}})
	require.Equal(t, greenq.StateSucceeded, f.f.State, f.f.Error)
	got := envLines(log)

	for _, v := range []string{"redis-pass-9f2", "em-token-77a1", "wt-pass-c3d4", "aws-secret-5e6f"} {
		require.NotContains(t, log, v, "a worker secret reached the job")
	}
	for _, k := range []string{"GREENQ_REDIS_URL", "GREENQ_ELECTRICITYMAPS_TOKEN", "GREENQ_WATTTIME_PASSWORD", "AWS_SECRET_ACCESS_KEY"} {
		require.NotContains(t, got, k)
	}
	want := map[string]string{
		"PATH": workerEnv["PATH"], "HOME": "/var/lib/greenq", "USER": "greenq", "LANG": "en_GB.UTF-8",
		"HF_HOME": "/shared/hf-cache", // allowlisted
		"LR":      "0.01", "EPOCHS": "3", "WANDB_API_KEY": "wandb-value-1234",
		EnvRegion: testRegion, EnvTrial: "2", "CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
	}
	for k, v := range want {
		require.Equal(t, v, got[k], k)
	}
	for _, k := range []string{EnvJobID, EnvOutputDir, EnvFunctionalUnitsFile, EnvControlFile} {
		require.NotEmpty(t, got[k], k)
	}
	// The secret's value is nowhere in what the worker reports.
	rep, err := json.Marshal(f.f)
	require.NoError(t, err)
	require.NotContains(t, string(rep), "wandb-value-1234")
}

func TestPassEnvRefusesGreenqConfiguration(t *testing.T) {
	t.Parallel()
	for _, names := range [][]string{{"GREENQ_REDIS_URL"}, {"HF HOME"}, {""}} {
		_, err := New(Config{Region: "r", PassEnv: names, Meter: &EstimateMeter{}}, newFakeStore(), nil)
		require.ErrorContains(t, err, "pass_env", names)
	}
}

func TestMissingSecretFailsClearly(t *testing.T) {
	t.Parallel()
	for name, dir := range map[string]string{"no store": "", "not in store": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log, f := runEnv(t, func(c *Config) { c.SecretsDir = dir },
				greenq.Job{JobSpec: greenq.JobSpec{Secrets: map[string]string{"DB_PASS": "db-pass"}}})
			require.Equal(t, greenq.StateFailed, f.f.State)
			require.Contains(t, f.f.Error, "db-pass")
			require.Contains(t, f.f.Error, "DB_PASS")
			require.NotContains(t, log, "PATH=", "the job did not run without its secret")
		})
	}
}

func TestWorkdir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, f := runEnv(t, nil, greenq.Job{Command: []string{"pwd"}, JobSpec: greenq.JobSpec{Workdir: dir}})
	require.Equal(t, greenq.StateSucceeded, f.f.State, f.f.Error)
	require.Equal(t, dir, strings.TrimSpace(log))

	// Without one, a fresh directory under the work root, removed after.
	root := t.TempDir()
	log, f = runEnv(t, func(c *Config) { c.WorkRoot = root }, greenq.Job{Command: []string{"sh", "-c", "pwd; ls -A"}})
	require.Equal(t, greenq.StateSucceeded, f.f.State, f.f.Error)
	lines := strings.Split(strings.TrimSpace(log), "\n")
	require.Len(t, lines, 1, "the fresh workdir is empty: %q", log)
	require.Equal(t, root, filepath.Dir(lines[0]))
	left, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Empty(t, left, "the fresh workdir is removed when the run ends")

	// A workdir the worker does not have fails, saying so.
	_, f = runEnv(t, nil, greenq.Job{Command: []string{"pwd"}, JobSpec: greenq.JobSpec{Workdir: "/no/such/greenq/dir"}})
	require.Equal(t, greenq.StateFailed, f.f.State)
	require.Contains(t, f.f.Error, "/no/such/greenq/dir")
}

func TestImageWithoutEngineFailsClearly(t *testing.T) {
	t.Parallel()
	_, f := runEnv(t, nil, greenq.Job{JobSpec: greenq.JobSpec{Image: "localhost/train:1"}})
	require.Equal(t, greenq.StateFailed, f.f.State)
	require.Contains(t, f.f.Error, "container engine")
}

// Every stop is SIGTERM first, then the grace, then SIGKILL: the job's own
// grace when it sets one.
func TestStopIsTermThenGraceThenKill(t *testing.T) {
	t.Parallel()
	none := func(bundle, string) {}
	tests := []struct {
		name     string
		stop     func(b bundle, id string)
		deadline time.Duration // from submit; 0 = an hour
		state    greenq.State
		trap     string // what the job does on TERM
		exit     int
	}{
		{"cancel, job exits on TERM", func(b bundle, id string) { b.fs.cancel(id) }, 0, greenq.StateCancelled, `echo stopped; exit 5`, 5},
		{"cancel, job ignores TERM", func(b bundle, id string) { b.fs.cancel(id) }, 0, greenq.StateCancelled, ``, 128 + int(syscall.SIGKILL)},
		{"deadline, job exits on TERM", none, 1500 * time.Millisecond, greenq.StateFailed, `echo stopped; exit 0`, 0},
		{"deadline, job ignores TERM", none, 1500 * time.Millisecond, greenq.StateFailed, ``, 128 + int(syscall.SIGKILL)},
		{"drain then abandon, job exits on TERM", func(b bundle, _ string) { b.w.drain(); b.w.abandonRunning() }, 0, "", `echo stopped; exit 0`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.Grace = time.Hour }) // the job's grace_s must be the one used
			ready := fifo(t, b.dir)
			dl := tt.deadline
			if dl == 0 {
				dl = time.Hour
			}
			id := b.submit(t, greenq.Job{JobSpec: greenq.JobSpec{GraceS: 1}, Deadline: time.Now().Add(dl),
				Command: []string{"sh", "-c", `trap '` + tt.trap + `' TERM; echo > "$0"; while :; do sleep 0.05; done`, ready}})
			errc := b.process(context.Background(), id)
			readFifo(t, ready)
			tt.stop(b, id)
			require.NoError(t, waitErr(t, errc))
			if tt.state == "" {
				require.Empty(t, b.fs.finishes, "an abandoned job is not reported: asynq runs it again")
				require.Contains(t, b.fs.log(id), "stopped", "the job got SIGTERM before it was abandoned")
				return
			}
			f := b.waitFinish(t)
			require.Equal(t, tt.state, f.f.State, f.f.Error)
			require.Equal(t, tt.exit, f.f.ExitCode)
			if tt.trap != "" {
				require.Contains(t, b.fs.log(id), "stopped", "the job's TERM trap ran")
			}
		})
	}
}

// --signal USR1@D sends the warning D before the deadline, and the job
// goes on.
func TestWarnSignalBeforeDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	warned := fifo(t, b.dir)
	id := b.submit(t, greenq.Job{Deadline: time.Now().Add(time.Hour),
		JobSpec: greenq.JobSpec{WarnSignal: "USR1", WarnBeforeS: 3600 - 1},
		Command: []string{"sh", "-c", `trap 'echo warned > "$0"; exit 0' USR1; while :; do sleep 0.05; done`, warned}})
	errc := b.process(context.Background(), id)
	require.Equal(t, "warned", readFifo(t, warned))
	require.NoError(t, waitErr(t, errc))
	require.Equal(t, greenq.StateSucceeded, b.waitFinish(t).f.State)
}

// After protectProcess the worker's /proc files are root's: a job running
// as the worker's own user cannot read its environment.
func TestProtectProcess(t *testing.T) {
	t.Parallel()
	require.NoError(t, protectProcess())
	d, err := dumpable()
	require.NoError(t, err)
	require.False(t, d)
	if os.Geteuid() != 0 {
		_, err := os.ReadFile("/proc/self/environ")
		require.NoError(t, err, "the worker still reads its own")
	}
}

// A job run as another user cannot swap the control file for a link: the
// root worker writes it just before SIGTERM, and would write wherever a
// link pointed.
func TestControlFileIsTheWorkers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("running a job as another user needs root (CI runs as root)")
	}
	target := filepath.Join(t.TempDir(), "must-stay-empty")
	require.NoError(t, os.WriteFile(target, nil, 0o644))
	b := setup(t, func(c *Config) {
		c.RunAsUser = "nobody"
		c.WorkRoot = shareable(t)
		c.RunRoot = shareable(t)
		c.OutputRoot = shareable(t)
	})
	readyDir := shareable(t)
	require.NoError(t, os.Chmod(readyDir, 0o777)) // the job, as nobody, writes here
	ready := filepath.Join(readyDir, "ready")
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c",
		`rm -f "$GREENQ_CONTROL_FILE" 2>/dev/null && ln -s "$1" "$GREENQ_CONTROL_FILE" 2>/dev/null && echo replaced || echo cannot-replace
trap 'cat "$GREENQ_CONTROL_FILE"; exit 0' TERM; touch "$0"; while :; do sleep 0.05; done`, ready, target}})
	errc := b.process(context.Background(), id)
	waitPath(t, ready, func() string { return b.fs.log(id) })
	b.fs.cancel(id)
	require.NoError(t, waitErr(t, errc))
	require.Equal(t, greenq.StateCancelled, b.waitFinish(t).f.State)
	log := b.fs.log(id)
	require.Contains(t, log, "cannot-replace")
	require.Contains(t, log, ControlStop)
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	require.Empty(t, got)
}

// shareable is a temp dir every user may enter.
func shareable(t *testing.T) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		require.NoError(t, os.Chmod(p, 0o755))
	}
	return d
}

func waitPath(t *testing.T, p string, log func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s did not appear; job log: %s", p, log())
		time.Sleep(20 * time.Millisecond)
	}
}

// Checkpoints left by jobs that ended long ago are swept; a paused job's
// and a recent one are kept.
func TestSweepCheckpoints(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	b := setup(t, func(c *Config) { c.CheckpointRoot = root; c.CheckpointRetention = time.Hour })
	old := time.Now().Add(-2 * time.Hour)
	for id, st := range map[string]greenq.State{"failed-old": greenq.StateFailed, "paused-old": greenq.StatePlanned,
		"failed-new": greenq.StateFailed} {
		b.submit(t, greenq.Job{ID: id, State: st, Interruptible: true})
		require.NoError(t, os.MkdirAll(filepath.Join(root, id), 0o700))
		f := filepath.Join(root, id, "step")
		require.NoError(t, os.WriteFile(f, []byte("3"), 0o600))
		if id != "failed-new" {
			require.NoError(t, os.Chtimes(f, old, old))
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "gone-old"), 0o700)) // no such job
	require.NoError(t, os.WriteFile(filepath.Join(root, "gone-old", "step"), []byte("1"), 0o600))
	require.NoError(t, os.Chtimes(filepath.Join(root, "gone-old", "step"), old, old))

	b.w.sweepCheckpoints(context.Background())
	for id, kept := range map[string]bool{"failed-old": false, "gone-old": false, "paused-old": true, "failed-new": true} {
		_, err := os.Stat(filepath.Join(root, id, "step"))
		require.Equal(t, kept, err == nil, id)
	}
}
