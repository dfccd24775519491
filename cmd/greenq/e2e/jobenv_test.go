package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/testenv"
)

// TestJobSeesNoneOfTheWorkersSecrets runs `env` as a job on a worker whose
// environment holds what a systemd unit loads from greenq.env: the Redis
// URL with its password and provider tokens. The job's log (greenq logs)
// shows none of them; the variable the operator allowlisted, the job's own
// --env and its --secret do arrive. Run as root (as CI is), the worker also
// starts the job as an unprivileged user, who cannot read the worker's
// config file (mode 0600).
func TestJobSeesNoneOfTheWorkersSecrets(t *testing.T) {
	t.Parallel()
	const redisPass = "redis-pw-e2e-4f1c"
	r := startRedis(t, "--appendonly", "no", "--requirepass", redisPass)
	url := fmt.Sprintf("redis://:%s@%s/0", redisPass, r.Addr())
	cfg := nowStack(t, url)
	require.NoError(t, os.Chmod(cfg, 0o600))
	srv := startServer(t, "server", cfg)

	secrets := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "wandb"), []byte("wandb-value-e2e\n"), 0o600))
	workerEnv := []string{
		"GREENQ_REDIS_URL=" + url,
		"GREENQ_ELECTRICITYMAPS_TOKEN=em-token-e2e-9a",
		"GREENQ_WATTTIME_PASSWORD=wt-pass-e2e-7b",
		"AWS_SECRET_ACCESS_KEY=aws-e2e-3c",
		"HF_HOME=/shared/hf-cache",
	}
	args := []string{"worker", "--config", cfg, "--region", "us", "--gpus", "1", "--id", "w-env",
		"--pass-env", "HF_HOME", "--secrets-dir", secrets}
	asRoot := os.Geteuid() == 0
	if asRoot {
		args = append(args, "--run-as-user", "nobody")
	}
	startProcEnv(t, "worker", workerEnv, greenqBin, args...)
	srv.API.waitReady(t, true, "us")

	code, out, stderr := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "2s",
		"--env", "LR=0.01", "--secret", "WANDB_API_KEY=wandb", "--wait",
		"--", "sh", "-c", `env; cat "$0" 2>/dev/null || echo config-unreadable`, cfg)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, stderr)
	id := firstJobID(t, srv, out)

	code, log, stderr := cli(t, "logs", "--api", srv.URL, id)
	require.Equal(t, 0, code, stderr)
	for _, secret := range []string{redisPass, "em-token-e2e-9a", "wt-pass-e2e-7b", "aws-e2e-3c", "GREENQ_REDIS_URL"} {
		require.NotContains(t, log, secret, "a worker secret reached the job")
	}
	for _, want := range []string{"HF_HOME=/shared/hf-cache", "LR=0.01", "WANDB_API_KEY=wandb-value-e2e", "GREENQ_JOB_ID=" + id} {
		require.Contains(t, log, want)
	}
	if asRoot {
		require.Contains(t, log, "config-unreadable", "the job read the worker's config file")
	}
	// The secret's value is in the job's output only: not in its record.
	code, rec, _ := cli(t, "status", "--api", srv.URL, id, "-o", "json")
	require.Equal(t, 0, code)
	require.NotContains(t, rec, "wandb-value-e2e")
	require.Contains(t, rec, `"WANDB_API_KEY": "wandb"`)
}

// firstJobID finds the job `submit --wait` followed: its output names it,
// and it is the only job.
func firstJobID(t *testing.T, srv *server, out string) string {
	t.Helper()
	jobs := srv.API.jobs(t)
	require.Len(t, jobs, 1, "output: %s", out)
	require.Eventually(t, func() bool { return srv.API.mustJob(t, jobs[0].ID).State.Final() }, 10*time.Second, 50*time.Millisecond)
	require.True(t, strings.Contains(out, jobs[0].ID) || out != "", "submit --wait printed nothing")
	return jobs[0].ID
}

// TestImageJobRunsInItsContainer runs jobs with --image through the
// worker's podman: the command sees the image's marker file and its --env,
// and a cancel reaches the job inside the container as SIGTERM.
func TestImageJobRunsInItsContainer(t *testing.T) {
	t.Parallel()
	img := os.Getenv("GREENQ_TEST_IMAGE")
	if img == "" {
		msg := "GREENQ_TEST_IMAGE is not set: run `make test`, which installs podman and builds the test image"
		testenv.Missing(t, msg)
	}
	r := startRedis(t, "--appendonly", "no")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	startWorker(t, "w-img", cfg, "us", 1, "--container-engine", "podman")
	srv.API.waitReady(t, true, "us")

	code, out, stderr := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "2s",
		"--image", img, "--env", "GREETING=hello from the job", "--wait",
		"--", "sh", "-c", `cat /MARKER; echo "$GREETING"; echo "gpus=$CUDA_VISIBLE_DEVICES"`)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, stderr)
	jobs := srv.API.jobs(t)
	require.Len(t, jobs, 1)
	log := logsOf(srv.API, jobs[0].ID)
	require.Contains(t, log, "greenq-test-image", "the command ran in the image")
	require.Contains(t, log, "hello from the job")
	require.Contains(t, log, "gpus=0")

	code, out, stderr = cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "5m", "--image", img,
		"--", "sh", "-c", `trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)
	waitFor(t, 60*time.Second, "the container job to start", func() bool { return strings.Contains(logsOf(srv.API, id), "ready") })
	code, _, stderr = cli(t, "cancel", "--api", srv.URL, id)
	require.Equal(t, 0, code, stderr)
	// The worker records the run's segment once the job has stopped.
	srv.API.waitJob(t, id, 60*time.Second, "the cancelled job to stop", func(j *greenq.Job) bool {
		return j.State == greenq.StateCancelled && len(j.Segments) == 1
	})
	require.Contains(t, logsOf(srv.API, id), "got TERM", "the cancel reached the job in its container as SIGTERM")
}
