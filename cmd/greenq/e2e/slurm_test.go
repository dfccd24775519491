package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/testenv"
)

// slurmCluster returns the slurm.conf and partition of the one-node
// cluster `make test` starts (scripts/lib.sh start_slurm: 4 GPUs), failing
// under CI and skipping elsewhere when it is not running.
func slurmCluster(t *testing.T) (conf, partition string) {
	t.Helper()
	conf = os.Getenv("GREENQ_TEST_SLURM_CONF")
	if conf == "" {
		msg := "GREENQ_TEST_SLURM_CONF is not set: run `make test`, which installs Slurm and starts a one-node cluster"
		testenv.Missing(t, msg)
	}
	partition = os.Getenv("GREENQ_TEST_SLURM_PARTITION")
	if partition == "" {
		partition = "gpu"
	}
	return conf, partition
}

// squeue runs squeue against the test cluster.
func squeue(t *testing.T, conf string, args ...string) string {
	t.Helper()
	cmd := exec.Command("squeue", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SLURM_CONF=" + conf}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "squeue: %s", out)
	return string(out)
}

// TestSlurmRegionBesideProcessRegion runs a Slurm-backed region and a
// process-backed region side by side: greenq plans jobs in both; the
// Slurm one runs under sbatch with the GPUs Slurm gives it, its --env and
// its --secret, and a receipt that says greenq meter measured it on the
// node; `greenq cancel` of a running Slurm job reaches scancel: the job
// traps SIGTERM and Slurm's queue no longer has it.
func TestSlurmRegionBesideProcessRegion(t *testing.T) {
	t.Parallel()
	conf, partition := slurmCluster(t)
	r := startRedis(t, "--appendonly", "no")
	dir := t.TempDir()
	writeSeries(t, dir, time.Now().Add(-30*time.Minute), time.Hour, "US-CAL-CISO", "DE-LU")
	// The Slurm region states its node size: its workers' heartbeats offer
	// what is free now, which other users' jobs make smaller.
	cfg := filepath.Join(t.TempDir(), "greenq.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `redis: %s
slot: 1s
replan: "@every 2s"
refresh: "@every 1s"
regions:
  - {name: local, zone: US-CAL-CISO, provider: file, pue: 1, gpu_price_usd_per_hour: 1}
  - {name: hpc, zone: DE-LU, provider: file, pue: 1.1, gpu_price_usd_per_hour: 1, max_gpus_per_worker: 4}
providers:
  file: {dir: %q}
`, r.URL(), dir), 0o644))
	srv := startServer(t, "server", cfg)

	secrets := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "wandb"), []byte("wandb-value-slurm\n"), 0o600))
	spool := t.TempDir()
	require.NoError(t, os.Chmod(spool, 0o755))
	startWorker(t, "w-local", cfg, "local", 1)
	ws := startProcEnv(t, "w-slurm", []string{"SLURM_CONF=" + conf}, greenqBin, "worker", "--config", cfg, "--region", "hpc",
		"--id", "w-slurm", "--grace", "10s", "--executor", "slurm", "--slurm-partition", partition,
		"--slurm-spool", spool, "--slurm-poll-interval", "200ms", "--secrets-dir", secrets, "--meter-api-url", srv.URL)
	srv.API.waitReady(t, true, "local", "hpc")
	require.LessOrEqual(t, srv.API.capacity()["hpc"], 4, "the Slurm region offers at most its node's GPUs")

	// One job per region.
	code, out, stderr := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "2s", "--regions", "hpc",
		"--gpus", "2", "--env", "LR=0.01", "--secret", "WANDB_API_KEY=wandb",
		"--", "sh", "-c", `echo "slurm_job=$SLURM_JOB_ID"; echo "gpus=$CUDA_VISIBLE_DEVICES"; echo "lr=$LR"; echo "key=$WANDB_API_KEY"; echo "id=$GREENQ_JOB_ID"`)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, stderr)
	onSlurm := strings.TrimSpace(out)
	code, out, stderr = cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "2s", "--regions", "local",
		"--", "sh", "-c", `echo "slurm_job=${SLURM_JOB_ID:-none}"`)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, stderr)
	onLocal := strings.TrimSpace(out)

	js := srv.API.waitFinal(t, onSlurm, 90*time.Second)
	jl := srv.API.waitFinal(t, onLocal, 90*time.Second)
	require.Equal(t, greenq.StateSucceeded, js.State, js.Error)
	require.Equal(t, greenq.StateSucceeded, jl.State, jl.Error)
	require.Equal(t, "hpc", js.Run.Region)
	require.Equal(t, "w-slurm", js.Run.Worker)
	require.Equal(t, "local", jl.Run.Region)

	log := logsOf(srv.API, onSlurm)
	require.Regexp(t, regexp.MustCompile(`slurm_job=\d+`), log, "the job ran under sbatch")
	require.Regexp(t, regexp.MustCompile(`gpus=\d,\d\n`), log, "Slurm set CUDA_VISIBLE_DEVICES for its two GPUs")
	require.Contains(t, log, "lr=0.01")
	require.Contains(t, log, "key=wandb-value-slurm")
	require.Contains(t, log, "id="+onSlurm)
	require.Contains(t, logsOf(srv.API, onLocal), "slurm_job=none")

	rc := js.Receipt
	require.NotNil(t, rc)
	require.Equal(t, "greenq-meter-api", rc.EnergyMeter, "measured by greenq meter on the node, posted with the job's token")
	require.Contains(t, []greenq.EnergySource{"nvml", "nvml-power-sampling", "estimate"}, rc.EnergySource)
	require.Positive(t, rc.EnergyKWh)
	require.InDelta(t, 1.1, rc.PUE, 1e-9)
	require.Equal(t, "worker", jl.Receipt.EnergyMeter)
	// The secret's value stays out of the record and out of Slurm.
	code, rec, _ := cli(t, "status", "--api", srv.URL, onSlurm, "-o", "json")
	require.Equal(t, 0, code)
	require.NotContains(t, rec, "wandb-value-slurm")
	require.NotContains(t, ws.Log(), "wandb-value-slurm")

	// A job larger than the node is refused at submit, naming gpus.
	code, _, stderr = cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "2s", "--regions", "hpc",
		"--gpus", "5", "--", "true")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "gpus")

	// Cancel reaches scancel: SIGTERM to the job, and it leaves Slurm.
	code, out, stderr = cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "5m", "--regions", "hpc",
		"--", "sh", "-c", `trap 'echo got TERM; exit 0' TERM; echo "ready $SLURM_JOB_ID"; while :; do sleep 0.1; done`)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)
	var slurmID string
	ready := regexp.MustCompile(`ready (\d+)`)
	waitFor(t, 90*time.Second, "the Slurm job to start", func() bool {
		m := ready.FindStringSubmatch(logsOf(srv.API, id))
		if m != nil {
			slurmID = m[1]
		}
		return m != nil
	})
	require.Contains(t, squeue(t, conf, "-h", "-j", slurmID, "-o", "%T"), "RUNNING")
	code, _, stderr = cli(t, "cancel", "--api", srv.URL, id)
	require.Equal(t, 0, code, stderr)
	srv.API.waitJob(t, id, 60*time.Second, "the cancelled job to stop", func(j *greenq.Job) bool {
		return j.State == greenq.StateCancelled && len(j.Segments) == 1
	})
	require.Contains(t, logsOf(srv.API, id), "got TERM", "the cancel reached the job as SIGTERM")
	require.Empty(t, strings.TrimSpace(squeue(t, conf, "-h", "-j", slurmID, "-o", "%T")), "the job left Slurm's queue")
}

// TestSlurmJobPausesAndResumes drains the Slurm worker while an
// interruptible job runs: the job gets SIGTERM through scancel, saves its
// step and exits, and is paused (planned again), not succeeded. A second
// Slurm worker sharing the spool (and so the checkpoints) submits it again
// as a new sbatch job, which resumes from the saved step.
func TestSlurmJobPausesAndResumes(t *testing.T) {
	t.Parallel()
	conf, partition := slurmCluster(t)
	r := startRedis(t, "--appendonly", "no")
	dir := t.TempDir()
	writeSeries(t, dir, time.Now().Add(-30*time.Minute), time.Hour, "DE-LU")
	cfg := writeConfig(t, stackConfig{Redis: r.URL(), FileDir: dir, Regions: []region{{Name: "hpc", Zone: "DE-LU"}}})
	srv := startServer(t, "server", cfg)
	spool := t.TempDir()
	require.NoError(t, os.Chmod(spool, 0o755))
	slurmWorker := func(id string) *proc {
		return startProcEnv(t, id, []string{"SLURM_CONF=" + conf}, greenqBin, "worker", "--config", cfg, "--region", "hpc",
			"--id", id, "--grace", "10s", "--executor", "slurm", "--slurm-partition", partition,
			"--slurm-spool", spool, "--slurm-poll-interval", "200ms")
	}
	wa := slurmWorker("w-slurm-a")
	srv.API.waitReady(t, true, "hpc")

	code, out, stderr := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "4s",
		"--interruptible", "--", "sh", "-c", `echo "slurm job $SLURM_JOB_ID"; `+trainScript)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)
	stepRe := regexp.MustCompile(`(?m)^step (\d+)$`)
	waitFor(t, 90*time.Second, "the job to run a few steps under Slurm", func() bool {
		return len(stepRe.FindAllString(logsOf(srv.API, id), -1)) >= 5
	})
	wa.Signal(syscall.SIGTERM) // drain: the job is paused
	paused := srv.API.waitJob(t, id, 60*time.Second, "the job to be paused", func(j *greenq.Job) bool {
		return len(j.Segments) == 1 && !j.State.Final() && j.State != greenq.StateRunning
	})
	require.Equal(t, "w-slurm-a", paused.Segments[0].Worker)
	_, ok := wa.Wait(30 * time.Second)
	require.True(t, ok, "w-slurm-a stopped")
	require.Contains(t, logsOf(srv.API, id), "paused at step")

	slurmWorker("w-slurm-b")
	done := srv.API.waitFinal(t, id, 90*time.Second)
	require.Equal(t, greenq.StateSucceeded, done.State, done.Error)
	require.Equal(t, "w-slurm-b", done.Run.Worker)
	require.Len(t, done.Segments, 2)
	log := logsOf(srv.API, id)
	resumes := regexp.MustCompile(`resuming at step (\d+)`).FindAllStringSubmatch(log, -1)
	require.Len(t, resumes, 2, log)
	require.Equal(t, "0", resumes[0][1])
	require.NotEqual(t, "0", resumes[1][1], "the second sbatch job resumed from the checkpoint:\n%s", log)
	require.Len(t, stepRe.FindAllString(log, -1), 40, "each step ran once over both segments:\n%s", log)
	jobs := regexp.MustCompile(`slurm job (\d+)`).FindAllStringSubmatch(log, -1)
	require.Len(t, jobs, 2)
	require.NotEqual(t, jobs[0][1], jobs[1][1], "each segment is its own sbatch job")
	require.Equal(t, "greenq-meter", done.Receipt.EnergyMeter)
}
