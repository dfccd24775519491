package slurm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/internal/testenv"
	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/executortest"
	"github.com/greenq/greenq/worker/executor/slurm"
)

// The cluster `make test` starts (scripts/lib.sh start_slurm): a slurm.conf
// and its partition, a one-node cluster with 4 GPUs.
const (
	EnvConf      = "GREENQ_TEST_SLURM_CONF"
	EnvPartition = "GREENQ_TEST_SLURM_PARTITION"
	nodeGPUs     = 4
)

// greenqBin is a greenq binary for greenq meter, built by TestMain (or
// GREENQ_E2E_BIN's).
var greenqBin string

func TestMain(m *testing.M) {
	// Stands in for the worker's secrets: the suite checks that none of
	// the executor's variables reach a job.
	os.Setenv("GREENQ_REDIS_URL", "redis://:worker-password@10.0.0.1:6379/0")
	code := func() int {
		if os.Getenv(EnvConf) == "" {
			return m.Run() // every test skips (or fails under CI)
		}
		greenqBin = os.Getenv("GREENQ_E2E_BIN")
		if greenqBin == "" {
			dir, err := os.MkdirTemp("", "greenq-slurm-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			os.Chmod(dir, 0o755)
			greenqBin = filepath.Join(dir, "greenq")
			gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
			if out, err := exec.Command(gobin, "build", "-o", greenqBin, "github.com/greenq/greenq/cmd/greenq").CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build greenq: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// cluster returns the test cluster's slurm.conf and partition, failing
// under CI and skipping elsewhere when make test has not started it.
func cluster(t *testing.T) (conf, partition string) {
	t.Helper()
	conf = os.Getenv(EnvConf)
	if conf == "" {
		msg := EnvConf + " is not set: run `make test`, which installs Slurm and starts a one-node cluster"
		testenv.Missing(t, msg)
	}
	partition = os.Getenv(EnvPartition)
	if partition == "" {
		partition = "gpu"
	}
	return conf, partition
}

// shareable is a temp dir every user may enter.
func shareable(t *testing.T) string {
	d := t.TempDir()
	for p := d; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	return d
}

func newExecutor(t *testing.T, edit func(*slurm.Config)) *slurm.Executor {
	t.Helper()
	conf, partition := cluster(t)
	cfg := slurm.Config{Partition: partition, Spool: shareable(t), PollInterval: 200 * time.Millisecond,
		Env: []string{"PATH=" + os.Getenv("PATH"), "SLURM_CONF=" + conf}}
	if edit != nil {
		edit(&cfg)
	}
	e, err := slurm.New(t.Context(), cfg)
	require.NoError(t, err)
	return e
}

// slurmCmd runs one of Slurm's commands against the test cluster.
func slurmCmd(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	conf, _ := cluster(t)
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLURM_CONF=" + conf}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func spec(t *testing.T, dir, script string, env ...string) (executor.Spec, *executortest.Output) {
	out := &executortest.Output{}
	return executor.Spec{JobID: strings.ReplaceAll(t.Name(), "/", "-"), Argv: []string{"sh", "-c", script}, Dir: dir,
		Env: append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...), Output: out}, out
}

func wait(t *testing.T, p executor.Process) executor.Exit {
	t.Helper()
	return executortest.Wait(t, p, 90*time.Second)
}

func slurmID(p executor.Process) string { return p.(interface{ ID() string }).ID() }

// jobField returns a field of `scontrol show job -o ID`.
func jobField(t *testing.T, id, field string) string {
	t.Helper()
	out, err := slurmCmd(t, "scontrol", "show", "job", "-o", id)
	require.NoError(t, err, out)
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, field+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in %s", field, out)
	return ""
}

func waitState(t *testing.T, id, state string) {
	t.Helper()
	require.Eventually(t, func() bool { return jobField(t, id, "JobState") == state }, 60*time.Second, 100*time.Millisecond,
		"slurm job %s did not become %s", id, state)
}

// The shared suite, with the command run directly by the batch script…
func TestSlurmExecutor(t *testing.T) {
	t.Parallel()
	cluster(t)
	executortest.Run(t, executortest.Target{New: func(t *testing.T) executor.Executor { return newExecutor(t, nil) }, GPUs: 1})
}

// …and wrapped in greenq meter, which passes signals on and exits as the
// command did.
func TestSlurmExecutorWithMeter(t *testing.T) {
	t.Parallel()
	cluster(t)
	executortest.Run(t, executortest.Target{New: func(t *testing.T) executor.Executor {
		return newExecutor(t, func(c *slurm.Config) { c.Meter = greenqBin })
	}, GPUs: 1})
}

// A job runs under sbatch with the GPUs Slurm allocated: Slurm sets
// CUDA_VISIBLE_DEVICES and SLURM_JOB_ID. greenq meter's reading comes back
// as the run's energy, saying what measured it.
func TestGPUsAndReading(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, func(c *slurm.Config) { c.Meter = greenqBin })
	s, out := spec(t, shareable(t), `echo "gpus=$CUDA_VISIBLE_DEVICES job=$SLURM_JOB_ID"; exit 3`)
	s.GPUCount = 2
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	ex := wait(t, p)
	require.Equal(t, 3, ex.Code, out.String())
	require.Contains(t, out.String(), "job="+slurmID(p))
	require.Regexp(t, `gpus=\d,\d job=`, out.String())
	require.NotNil(t, ex.Energy, "greenq meter's reading")
	require.Equal(t, "greenq-meter", ex.Energy.Meter)
	require.Equal(t, 3, ex.Energy.ExitCode)
	require.Len(t, ex.Energy.GPUs, 2)
	require.NotEmpty(t, ex.Energy.Source)
	require.Equal(t, "2", jobField(t, slurmID(p), "TresPerNode")[len("gres:gpu:"):])
}

// The environment never reaches Slurm: not the command line, not the batch
// script Slurm keeps, not scontrol; its file is gone once the job started.
func TestEnvironmentStaysOffSlurm(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	dir := shareable(t)
	ready := filepath.Join(dir, "ready")
	s, out := spec(t, dir, `echo "token=$API_TOKEN"; touch "$0"; sleep 30`, "API_TOKEN=s3cret-'quoted' \"value\"\nline2")
	s.Argv = append(s.Argv, ready)
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 60*time.Second, 50*time.Millisecond)
	script, err := slurmCmd(t, "scontrol", "write", "batch_script", slurmID(p), "-")
	require.NoError(t, err, script)
	require.Contains(t, script, "greenq job")
	show, err := slurmCmd(t, "scontrol", "show", "job", "-d", slurmID(p))
	require.NoError(t, err)
	for _, s := range []string{script, show} {
		require.NotContains(t, s, "s3cret")
	}
	envFiles, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(jobField(t, slurmID(p), "StdOut"))), "*", "env"))
	require.Empty(t, envFiles, "the environment file is deleted once the job started")
	require.NoError(t, p.Signal(syscall.SIGKILL))
	wait(t, p)
	require.Contains(t, out.String(), "token=s3cret-'quoted' \"value\"\nline2")
}

// The partition's capacity is what sinfo reports free, plus what this
// executor's own jobs hold; the largest node is the node.
func TestCapacityFromSinfo(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	c, err := e.GPUCapacity(t.Context())
	require.NoError(t, err)
	require.Equal(t, nodeGPUs, c.Largest)
	require.Equal(t, nodeGPUs, c.Total)

	// Another user's job holds one GPU, this executor's job two.
	dir := shareable(t)
	other, err := slurmCmd(t, "sbatch", "--parsable", "--gres=gpu:1", "--chdir", dir, "--output", "/dev/null", "--wrap", "sleep 120")
	require.NoError(t, err, other)
	other = strings.TrimSpace(other)
	t.Cleanup(func() { slurmCmd(t, "scancel", other) })
	s, _ := spec(t, dir, `sleep 120`)
	s.GPUCount = 2
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	waitState(t, other, "RUNNING")
	waitState(t, slurmID(p), "RUNNING")
	// Other tests share the cluster: wait for a moment they hold none.
	require.Eventually(t, func() bool {
		c, err = e.GPUCapacity(t.Context())
		return err == nil && c.Offered == nodeGPUs-1 && c.Busy == 2
	}, 60*time.Second, 200*time.Millisecond, "capacity %+v", c)

	require.NoError(t, p.Signal(syscall.SIGKILL))
	wait(t, p)
	c, err = e.GPUCapacity(t.Context())
	require.NoError(t, err)
	require.Equal(t, 0, c.Busy, "the ended job holds nothing")
	require.LessOrEqual(t, c.Offered, nodeGPUs-1)
}

// A job that needs more GPUs than the node has is refused at submission,
// naming gpus.
func TestTooManyGPUsRefused(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	s, _ := spec(t, shareable(t), `true`)
	s.GPUCount = nodeGPUs + 1
	_, err := e.Start(t.Context(), s)
	require.Error(t, err)
	require.Contains(t, err.Error(), "gpus")
	require.Contains(t, err.Error(), fmt.Sprint(nodeGPUs+1))
	c, err := e.GPUCapacity(t.Context())
	require.NoError(t, err)
	require.Equal(t, 0, c.Busy, "nothing is left in flight")
}

// Without container support configured, a job with an image is refused,
// naming the image.
func TestImageRefusedWithoutContainerSupport(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	s, _ := spec(t, shareable(t), `true`)
	s.Image = "localhost/train:1"
	_, err := e.Start(t.Context(), s)
	require.ErrorContains(t, err, "localhost/train:1")
	require.ErrorContains(t, err, "container")
}

// --time comes from the estimate with a margin, but never past the
// deadline.
func TestTimeLimitNeverPastDeadline(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	dir := shareable(t)
	for _, c := range []struct {
		name     string
		deadline time.Duration
		estimate time.Duration
		want     string
	}{
		{"deadline first", 10*time.Minute + 30*time.Second, time.Hour, "00:10:00"},
		{"estimate first", 24 * time.Hour, 20 * time.Minute, "00:50:00"},
	} {
		s, _ := spec(t, dir, `sleep 120`)
		s.Deadline, s.Estimate = time.Now().Add(c.deadline), c.estimate
		p, err := e.Start(t.Context(), s)
		require.NoError(t, err)
		got := jobField(t, slurmID(p), "TimeLimit")
		require.NoError(t, p.Signal(syscall.SIGKILL))
		wait(t, p)
		require.Equal(t, c.want, got, c.name)
	}
	s, _ := spec(t, dir, `true`)
	s.Deadline = time.Now().Add(20 * time.Second)
	_, err := e.Start(t.Context(), s)
	require.ErrorContains(t, err, "deadline")
}

// A run Slurm requeues (as it does after a node failure or a preemption)
// comes back lost, not failed: the worker plans it again. The requeued job
// is cancelled, so it never runs again from Slurm's queue.
func TestRequeueIsLost(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, nil)
	dir := shareable(t)
	ready := filepath.Join(dir, "ready")
	s, _ := spec(t, dir, `touch "$0"; sleep 120`)
	s.Argv = append(s.Argv, ready)
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 60*time.Second, 50*time.Millisecond)
	out, err := slurmCmd(t, "scontrol", "requeue", slurmID(p))
	require.NoError(t, err, out)
	ex := wait(t, p)
	require.True(t, errors.Is(ex.Err, executor.ErrLost), "exit %+v", ex)
	require.Equal(t, "CANCELLED", jobField(t, slurmID(p), "JobState"))
}

// A job still pending in Slurm's queue is cancelled by SIGTERM.
func TestPendingJobCancelled(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, func(c *slurm.Config) { c.ExtraArgs = []string{"--begin=now+1hour"} })
	s, out := spec(t, shareable(t), `echo ran`)
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	waitState(t, slurmID(p), "PENDING")
	require.NoError(t, p.Signal(syscall.SIGTERM))
	ex := wait(t, p)
	require.Equal(t, 128+int(syscall.SIGTERM), ex.Code)
	require.NotContains(t, out.String(), "ran")
}

// A partition the cluster does not have is refused by New.
func TestUnknownPartition(t *testing.T) {
	t.Parallel()
	conf, _ := cluster(t)
	_, err := slurm.New(context.Background(), slurm.Config{Partition: "no-such-partition", Spool: t.TempDir(),
		Env: []string{"PATH=" + os.Getenv("PATH"), "SLURM_CONF=" + conf}})
	require.ErrorIs(t, err, slurm.ErrNoPartition)
}

// A run of the same job id that Slurm still has (left by a worker that
// died) is cancelled before the new run is submitted.
func TestEarlierRunIsReplaced(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, func(c *slurm.Config) { c.ReplaceEarlierRuns = true })
	dir := shareable(t)
	s, _ := spec(t, dir, `sleep 120`)
	s.JobID = "replace-" + filepath.Base(dir)
	first, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	waitState(t, slurmID(first), "RUNNING")
	s2, out := spec(t, dir, `echo second`)
	s2.JobID = s.JobID
	second, err := e.Start(t.Context(), s2)
	require.NoError(t, err)
	require.NotEqual(t, 0, wait(t, first).Code, "the earlier run was cancelled")
	require.Equal(t, 0, wait(t, second).Code, out.String())
	require.Contains(t, out.String(), "second")
}

// A job run as another user is submitted as that user (sbatch --uid/--gid,
// which root may do), and its run's files are that user's.
func TestRunsAsTheJobsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("sbatch --uid needs root")
	}
	e := newExecutor(t, func(c *slurm.Config) { c.Meter = greenqBin })
	dir := shareable(t)
	s, out := spec(t, dir, `echo "uid=$(id -u)"; touch mine`, "SECRET=only-mine")
	s.User = &executor.User{UID: 65534, GID: 65534}
	require.NoError(t, os.Chmod(dir, 0o777))
	p, err := e.Start(t.Context(), s)
	require.NoError(t, err)
	ex := wait(t, p)
	require.Equal(t, 0, ex.Code, out.String())
	require.Contains(t, out.String(), "uid=65534")
	st, err := os.Stat(filepath.Join(dir, "mine"))
	require.NoError(t, err)
	require.Equal(t, uint32(65534), st.Sys().(*syscall.Stat_t).Uid)
	require.NotNil(t, ex.Energy, "greenq meter ran as the user and wrote its reading")
}
