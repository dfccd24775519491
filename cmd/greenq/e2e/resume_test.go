package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// trainScript counts to 40 steps, saving its step in the checkpoint
// directory as it goes, and resumes from it: greenq's pause protocol
// (SIGTERM: save and exit) in a dozen lines of sh.
const trainScript = `cp="$GREENQ_CHECKPOINT_DIR/step"
step=$(cat "$cp" 2>/dev/null || echo 0)
echo "resuming at step $step on $GREENQ_REGION"
trap 'echo "$step" > "$cp"; echo "paused at step $step"; exit 0' TERM
while [ "$step" -lt 40 ]; do
  step=$((step + 1)); echo "$step" > "$cp"; echo "step $step"
  sleep 0.1
done
echo "done at step $step"`

// TestInterruptibleJobMovesBetweenWorkersAndResumes pauses an interruptible
// job by draining the worker that runs it, and resumes it on a second
// worker that shares only the checkpoint location (an object store URL):
// it continues from the step it saved, is paused rather than succeeded
// after the first segment although it exited 0, and its checkpoint is
// deleted once it succeeds.
func TestInterruptibleJobMovesBetweenWorkersAndResumes(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "no")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	store := t.TempDir()
	checkpoints := "file://" + store
	wa := startWorker(t, "w-a", cfg, "us", 1, "--checkpoint-dir", checkpoints, "--output-dir", t.TempDir())
	srv.API.waitReady(t, true, "us")

	code, out, stderr := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "4s",
		"--interruptible", "--name", "resume-e2e", "--", "sh", "-c", trainScript)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)

	stepRe := regexp.MustCompile(`(?m)^step (\d+)$`)
	waitFor(t, 30*time.Second, "the job to run a few steps on w-a", func() bool {
		m := stepRe.FindAllStringSubmatch(logsOf(srv.API, id), -1)
		return len(m) >= 5
	})
	wa.Signal(syscall.SIGTERM) // drain: the job is paused
	paused := srv.API.waitJob(t, id, 30*time.Second, "the job to be paused", func(j *greenq.Job) bool {
		return len(j.Segments) == 1 && !j.State.Final() && j.State != greenq.StateRunning
	})
	require.Equal(t, "w-a", paused.Segments[0].Worker)
	_, ok := wa.Wait(30 * time.Second)
	require.True(t, ok, "w-a stopped")
	log := logsOf(srv.API, id)
	m := regexp.MustCompile(`paused at step (\d+)`).FindStringSubmatch(log)
	require.NotNil(t, m, "the job saved on SIGTERM:\n%s", log)
	savedAt, _ := strconv.Atoi(m[1])
	require.Greater(t, savedAt, 0)

	startWorker(t, "w-b", cfg, "us", 1, "--checkpoint-dir", checkpoints, "--output-dir", t.TempDir())
	done := srv.API.waitFinal(t, id, 60*time.Second)
	require.Equal(t, greenq.StateSucceeded, done.State, done.Error)
	require.Equal(t, "w-b", done.Run.Worker)
	require.Len(t, done.Segments, 2)
	log = logsOf(srv.API, id)
	require.Contains(t, log, "resuming at step 0 ")
	require.Contains(t, log, "resuming at step "+strconv.Itoa(savedAt)+" ", "w-b continued from the saved step:\n%s", log)
	require.Contains(t, log, "done at step 40")
	require.Equal(t, 40, len(stepRe.FindAllString(log, -1)), "each step ran once over both segments:\n%s", log)
	require.NotNil(t, done.Receipt)

	var left []string
	require.NoError(t, filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return err
	}))
	require.Empty(t, left, "the checkpoint of a succeeded job is deleted")
}
