package e2e

import (
	"context"
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
	for name, argv := range map[string][]string{
		"sh": {"sh", "-c", trainScript},
		"the README's Python (docs/train_resumable.py)": {"python3", "../../../docs/train_resumable.py"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if argv[0] == "python3" {
				abs, err := filepath.Abs(argv[1])
				require.NoError(t, err)
				argv = []string{"python3", abs}
			}
			moveAndResume(t, argv)
		})
	}
}

func moveAndResume(t *testing.T, argv []string) {
	r := startRedis(t, "--appendonly", "no")
	cfg := nowStack(t, r.URL())
	srv := startServer(t, "server", cfg)
	store := t.TempDir()
	checkpoints := "file://" + store
	wa := startWorker(t, "w-a", cfg, "us", 1, "--checkpoint-dir", checkpoints, "--output-dir", t.TempDir())
	srv.API.waitReady(t, true, "us")

	args := append([]string{"submit", "--api", srv.URL, "--deadline", "10m", "--duration", "4s",
		"--interruptible", "--name", "resume-e2e", "--env", "STEP_S=0.1", "--"}, argv...)
	code, out, stderr := cli(t, args...)
	require.Equal(t, 0, code, stderr)
	id := strings.TrimSpace(out)

	stepRe := regexp.MustCompile(`(?m)^step (\d+)$`)
	resumeRe := regexp.MustCompile(`resuming at step (\d+)`)
	waitFor(t, 30*time.Second, "the job to run a few steps on w-a", func() bool {
		return len(stepRe.FindAllString(logsOf(srv.API, id), -1)) >= 5
	})
	wa.Signal(syscall.SIGTERM) // drain: the job is paused
	paused := srv.API.waitJob(t, id, 30*time.Second, "the job to be paused", func(j *greenq.Job) bool {
		return len(j.Segments) == 1 && !j.State.Final() && j.State != greenq.StateRunning
	})
	require.Equal(t, "w-a", paused.Segments[0].Worker, "paused, not succeeded, though it exited 0")
	_, ok := wa.Wait(30 * time.Second)
	require.True(t, ok, "w-a stopped")
	first := logsOf(srv.API, id)
	steps := stepRe.FindAllStringSubmatch(first, -1)
	lastBefore, _ := strconv.Atoi(steps[len(steps)-1][1])

	startWorker(t, "w-b", cfg, "us", 1, "--checkpoint-dir", checkpoints, "--output-dir", t.TempDir())
	done := srv.API.waitFinal(t, id, 60*time.Second)
	require.Equal(t, greenq.StateSucceeded, done.State, done.Error)
	require.Equal(t, "w-b", done.Run.Worker)
	require.Len(t, done.Segments, 2)
	log := logsOf(srv.API, id)
	resumes := resumeRe.FindAllStringSubmatch(log, -1)
	require.Len(t, resumes, 2, log)
	require.Equal(t, "0", resumes[0][1])
	require.Equal(t, strconv.Itoa(lastBefore), resumes[1][1], "w-b continued from the step w-a saved:\n%s", log)
	require.Len(t, stepRe.FindAllString(log, -1), 40, "each step ran once over both segments:\n%s", log)
	require.Contains(t, log, "done")
	require.NotNil(t, done.Receipt)

	// The worker deletes the checkpoint just after it reports the end.
	var left []string
	waitFor(t, 10*time.Second, "the checkpoint of the succeeded job to be deleted", func() bool {
		left = nil
		require.NoError(t, filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, p)
			}
			return err
		}))
		return len(left) == 0
	})
}

// TestPlannerPausesARunningJobForCleanerHours runs the planner, releaser
// and a worker in this process against a real redis-server (the server's
// forecast refresh reuses a series for 10 min, which greenq.yaml cannot
// shorten, so the binary cannot change its forecast in a test's time). An
// interruptible job starts at once under a flat forecast; once it has run
// a segment's minimum (4 slots of 1 s) the forecast changes to dirty now
// and clean 15 s ahead. The planner pauses the job (SIGTERM, control file
// "pause"): it saves its step, is planned again rather than succeeded,
// resumes in the clean window from the step it saved and succeeds in two
// segments.
func TestPlannerPausesARunningJobForCleanerHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newInproc(t, "eu")
	flat := troughSeries("eu", time.Now().Add(-time.Hour), 0)
	require.NoError(t, p.Store.PutSeries(ctx, flat))
	script := `cp="$GREENQ_CHECKPOINT_DIR/step"
step=$(cat "$cp" 2>/dev/null || echo 0)
echo "resuming at step $step"
trap 'echo "$step" > "$cp"; echo "paused at step $step: $(cat "$GREENQ_CONTROL_FILE")"; exit 0' TERM
while [ "$step" -lt 100 ]; do
  step=$((step + 1)); echo "$step" > "$cp"; echo "step $step"
  sleep 0.1
done
echo "done at step $step"`
	jobs, err := p.Store.Submit(ctx, "e2e", greenq.SubmitRequest{Name: "pause-e2e", Regions: []string{"eu"}, Interruptible: true,
		DurationEstimateS: 10, Deadline: "5m", Command: []string{"sh", "-c", script}})
	require.NoError(t, err)
	id := jobs[0].ID
	p.runPlanner()
	p.runReleaser()
	p.startWorker("w", "eu", 0)

	stepRe := regexp.MustCompile(`(?m)^step (\d+)$`)
	logs := func() string {
		b, err := p.Store.Logs(ctx, "", id)
		require.NoError(t, err)
		return string(b)
	}
	waitFor(t, 60*time.Second, "the job to run 5 s", func() bool { return len(stepRe.FindAllString(logs(), -1)) >= 50 })
	clean := time.Now().Add(15 * time.Second)
	require.NoError(t, p.Store.PutSeries(ctx, troughSeries("eu", clean, time.Hour)))
	p.Planner.Trigger()
	paused := p.waitJob(id, 30*time.Second, "the planner to pause the job", func(j *greenq.Job) bool {
		return len(j.Segments) == 1 && j.State != greenq.StateRunning
	})
	require.False(t, paused.State.Final(), "paused, not ended: %s", paused.State)
	require.Contains(t, logs(), ": pause", "the control file said why")

	done := p.waitFinal(id, 90*time.Second)
	require.Equal(t, greenq.StateSucceeded, done.State, done.Error)
	require.Len(t, done.Segments, 2)
	require.False(t, done.Segments[1].Start.Before(clean.Add(-time.Second)), "resumed in the clean window: %+v", done.Segments)
	log := logs()
	require.Len(t, stepRe.FindAllString(log, -1), 100, "each step ran once over both segments:\n%s", log)
	require.NotNil(t, done.Receipt)
}
