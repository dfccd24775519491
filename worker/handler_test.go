package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

const testRegion = "test-r"

type bundle struct {
	w   *Worker
	fs  *fakeStore
	dir string
	ctx context.Context
}

func setup(t *testing.T, mod func(*Config)) bundle {
	t.Helper()
	fs := newFakeStore()
	cfg := Config{
		Region: testRegion, GPUs: 2, ID: "w1", Grace: 5 * time.Second,
		Meter:          &EstimateMeter{},
		SysRoot:        t.TempDir(), // no RAPL: CPU energy is estimated
		CheckpointRoot: t.TempDir(),
		PUE:            map[string]float64{testRegion: 1.2},
		Logger:         slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg, fs, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.watchCancels(ctx) }()
	pausesDone := make(chan struct{})
	go func() { defer close(pausesDone); w.watchPauses(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-pausesDone })
	return bundle{w: w, fs: fs, dir: t.TempDir(), ctx: ctx}
}

// submit stores a released job with defaults filled and returns its id.
func (b bundle) submit(t *testing.T, j greenq.Job) string {
	t.Helper()
	if j.ID == "" {
		j.ID = redistest.Unique("job")
	}
	if j.State == "" {
		j.State = greenq.StateReleased
	}
	if j.GPUs == 0 {
		j.GPUs = 1
	}
	b.fs.put(&j)
	return j.ID
}

func task(id string) *asynq.Task {
	p, _ := json.Marshal(map[string]string{"job_id": id})
	return asynq.NewTask(queue.TaskTypeRun, p)
}

// process runs the handler for id in the background.
func (b bundle) process(ctx context.Context, id string) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- b.w.ProcessTask(ctx, task(id)) }()
	return errc
}

func (b bundle) waitFinish(t *testing.T) finishCall {
	t.Helper()
	select {
	case f := <-b.fs.finishes:
		return f
	case <-time.After(30 * time.Second):
		t.Fatal("no Finish within 30s")
	}
	return finishCall{}
}

func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("handler did not return within 30s")
	}
	return nil
}

// fifo makes a named pipe a job writes to, so the test can wait for the
// job to reach a point instead of sleeping.
func fifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, redistest.Unique("fifo"))
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	return p
}

// readFifo blocks until the job writes a line to p.
func readFifo(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p) // returns when the writer closes
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func TestRunToCompletion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		job      greenq.Job
		state    greenq.State
		exitCode int
		log      string
		errPart  string
	}{
		{name: "echo", job: greenq.Job{Command: []string{"sh", "-c", "echo hi"}},
			state: greenq.StateSucceeded, log: "hi\n"},
		{name: "exit code", job: greenq.Job{Command: []string{"sh", "-c", "echo oops >&2; exit 3"}},
			state: greenq.StateFailed, exitCode: 3, log: "oops\n", errPart: "exit status 3"},
		{name: "argv without shell", job: greenq.Job{Command: []string{"echo", "$HOME", "a;b", "*"}},
			state: greenq.StateSucceeded, log: "$HOME a;b *\n"},
		{name: "env", job: greenq.Job{ID: "job-env", Trial: 3, GPUs: 2, Interruptible: true,
			Command: []string{"sh", "-c", `echo "$GREENQ_JOB_ID|$GREENQ_REGION|$GREENQ_TRIAL|$CUDA_VISIBLE_DEVICES|$(basename $GREENQ_CHECKPOINT_DIR)"`}},
			state: greenq.StateSucceeded, log: "job-env|test-r|3|0,1|job-env\n"},
		{name: "not found", job: greenq.Job{Command: []string{"/nonexistent/greenq-test"}},
			state: greenq.StateFailed, exitCode: 127, errPart: "start /nonexistent/greenq-test"},
		{name: "no command", job: greenq.Job{}, state: greenq.StateFailed, exitCode: -1, errPart: "no command"},
		{name: "too many gpus", job: greenq.Job{GPUs: 3, Command: []string{"true"}},
			state: greenq.StateFailed, exitCode: -1, errPart: "this worker has 2"},
		{name: "deadline passed before start", job: greenq.Job{Deadline: time.Now().Add(-time.Minute), Command: []string{"true"}},
			state: greenq.StateFailed, exitCode: -1, errPart: "passed before the job could start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			id := b.submit(t, tt.job)
			require.NoError(t, waitErr(t, b.process(context.Background(), id)))
			f := b.waitFinish(t)
			require.Equal(t, id, f.id)
			require.Equal(t, tt.state, f.f.State, f.f.Error)
			require.Equal(t, tt.exitCode, f.f.ExitCode)
			require.Contains(t, f.f.Error, tt.errPart)
			if tt.log != "" {
				require.Equal(t, tt.log, b.fs.log(id))
			}
			require.NotNil(t, f.f.Receipt)
			rc := f.f.Receipt
			require.Equal(t, SourceEstimate, rc.EnergySource)
			require.Equal(t, SourceEstimate, rc.CPUEnergySource)
			require.Equal(t, rc.EnergyKWh*rc.PUE*rc.IntensityGCO2PerKWh, rc.GCO2)
			require.Equal(t, rc.BaselineGCO2-rc.GCO2, rc.SavedGCO2)
			require.Equal(t, tt.state, b.fs.job(id).State)
			require.Equal(t, 1, b.fs.job(id).Attempts)
			require.Zero(t, b.w.pool.busy(), "GPUs are returned")
		})
	}
}

func TestReceiptUsesRegionSeries(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := time.Now()
	b.fs.series[testRegion] = forecast.Series{Region: testRegion, Source: "file", Signal: forecast.SignalAverage,
		Points: []forecast.Point{{Start: now.Add(-time.Hour), End: now.Add(time.Hour), GCO2PerKWh: 50, Kind: forecast.KindActual}}}
	b.fs.series["dirty"] = forecast.Series{Region: "dirty", Source: "file", Signal: forecast.SignalAverage,
		Points: []forecast.Point{{Start: now.Add(-2 * time.Hour), End: now.Add(time.Hour), GCO2PerKWh: 400, Kind: forecast.KindActual}}}
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c", "echo hi"}, PowerW: 250,
		Plan: &greenq.Plan{Region: testRegion, Baseline: greenq.Baseline{Region: "dirty", Start: now.Add(-90 * time.Minute)}}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	rc := b.waitFinish(t).f.Receipt
	require.NotNil(t, rc)
	require.Equal(t, 50.0, rc.IntensityGCO2PerKWh)
	require.Equal(t, "file:actual", rc.IntensitySource)
	require.Equal(t, "average", rc.Signal)
	require.Equal(t, 1.2, rc.PUE)
	require.Equal(t, 400.0, rc.BaselineIntensityGCO2PerKWh)
	require.Equal(t, "dirty", rc.BaselineRegion)
	require.Greater(t, rc.SavedGCO2, 0.0)
	require.Equal(t, "job", rc.FunctionalUnit)
}

func TestCancelledBeforeStartNeverRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	marker := filepath.Join(b.dir, "ran")
	id := b.submit(t, greenq.Job{State: greenq.StateCancelled, Command: []string{"touch", marker}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	require.NoFileExists(t, marker)
	require.Empty(t, b.fs.finishes)
	require.Zero(t, b.fs.job(id).Attempts)
}

func TestBadTask(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, tk := range []*asynq.Task{
		asynq.NewTask(queue.TaskTypeRun, []byte("not json")),
		asynq.NewTask(queue.TaskTypeRun, []byte(`{}`)),
		asynq.NewTask("other", []byte(`{"job_id":"x"}`)),
	} {
		err := b.w.ProcessTask(context.Background(), tk)
		require.ErrorIs(t, err, asynq.SkipRetry)
	}
}

// gone reports whether pid has exited (absent or a zombie awaiting reaping).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || syscall.Kill(pid, 0) == syscall.ESRCH
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// requireGone waits, polling, for pid to die: the kernel delivers SIGKILL
// asynchronously and nothing signals the test when an orphan is reaped.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// grandchildScript starts a grandchild, reports its pid on the fifo ($0)
// and waits.
const grandchildScript = `sleep 1000 & echo $! > "$0"; wait`

func TestCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel func(b bundle, id string, asynqCancel context.CancelFunc)
	}{
		{"cancel event", func(b bundle, id string, _ context.CancelFunc) { b.fs.cancel(id) }},
		{"asynq context", func(b bundle, id string, c context.CancelFunc) {
			// As the queue cancels through asynq: record first, then the
			// task's context. No event reaches the worker.
			b.fs.mu.Lock()
			b.fs.jobs[id].State = greenq.StateCancelled
			b.fs.mu.Unlock()
			c()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			ff := fifo(t, b.dir)
			id := b.submit(t, greenq.Job{Command: []string{"sh", "-c", grandchildScript, ff}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := b.process(ctx, id)
			pid, err := strconv.Atoi(readFifo(t, ff))
			require.NoError(t, err)
			tt.cancel(b, id, cancel)
			require.NoError(t, waitErr(t, errc), "a cancel is final: no retry")
			f := b.waitFinish(t)
			require.Equal(t, greenq.StateCancelled, f.f.State)
			// A cancel is SIGTERM first; sh without a trap dies of it.
			require.Equal(t, 128+int(syscall.SIGTERM), f.f.ExitCode)
			require.NotNil(t, f.f.Receipt)
			requireGone(t, pid)
		})
	}
}

func TestLostTaskContextIsNotACancel(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ff := fifo(t, b.dir)
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c", grandchildScript, ff}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := b.process(ctx, id)
	pid, err := strconv.Atoi(readFifo(t, ff))
	require.NoError(t, err)
	cancel() // as asynq does when the worker's lease expired
	require.NoError(t, waitErr(t, errc))
	require.Empty(t, b.fs.finishes, "asynq runs the task again; nothing is reported")
	require.Equal(t, greenq.StateRunning, b.fs.job(id).State)
	requireGone(t, pid)
}

func TestCancelByPolling(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.CancelPollInterval = 20 * time.Millisecond })
	ff := fifo(t, b.dir)
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c", grandchildScript, ff}})
	errc := b.process(context.Background(), id)
	readFifo(t, ff)
	// The record says cancelled but no event is sent.
	b.fs.mu.Lock()
	b.fs.jobs[id].State = greenq.StateCancelled
	b.fs.mu.Unlock()
	require.NoError(t, waitErr(t, errc))
	require.Equal(t, greenq.StateCancelled, b.waitFinish(t).f.State)
}

func TestDeadlineKillsJob(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ff := fifo(t, b.dir)
	id := b.submit(t, greenq.Job{Deadline: time.Now().Add(300 * time.Millisecond),
		Command: []string{"sh", "-c", grandchildScript, ff}})
	errc := b.process(context.Background(), id)
	pid, err := strconv.Atoi(readFifo(t, ff))
	require.NoError(t, err)
	require.NoError(t, waitErr(t, errc))
	f := b.waitFinish(t)
	require.Equal(t, greenq.StateFailed, f.f.State)
	require.Contains(t, f.f.Error, "deadline")
	require.Contains(t, f.f.Error, "killed")
	requireGone(t, pid)
}

func TestLogTailBounded(t *testing.T) {
	t.Parallel()
	const max = 4096
	b := setup(t, func(c *Config) { c.LogBytes = max })
	id := b.submit(t, greenq.Job{Command: []string{"sh", "-c",
		`i=0; while [ $i -lt 5000 ]; do echo "line $i"; i=$((i+1)); done`}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	require.Equal(t, greenq.StateSucceeded, b.waitFinish(t).f.State)
	require.True(t, strings.HasSuffix(b.fs.log(id), "line 4999\n"))
	b.fs.mu.Lock()
	defer b.fs.mu.Unlock()
	for _, n := range b.fs.appends[id] {
		require.LessOrEqual(t, n, max+64, "one AppendLog holds at most the bound and a drop note")
	}
}

func TestInterruptiblePausesAtSegmentEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		exit   int
	}{
		{"checkpoints on SIGTERM",
			`trap 'echo saved > "$GREENQ_CHECKPOINT_DIR/state"; exit 143' TERM; echo > "$0"; while :; do sleep 0.05; done`, 143},
		// The pause protocol: saved and exited 0 after greenq's SIGTERM is
		// paused, never succeeded.
		{"checkpoints and exits 0",
			`trap 'cat "$GREENQ_CONTROL_FILE" > "$GREENQ_CHECKPOINT_DIR/state"; exit 0' TERM; echo > "$0"; while :; do sleep 0.05; done`, 0},
		{"ignores SIGTERM, killed after grace",
			`trap '' TERM; echo > "$0"; sleep 1000`, 128 + int(syscall.SIGKILL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.Grace = 300 * time.Millisecond })
			ff := fifo(t, b.dir)
			now := time.Now()
			id := b.submit(t, greenq.Job{Interruptible: true, Command: []string{"sh", "-c", tt.script, ff},
				Plan: &greenq.Plan{Region: testRegion, Segments: []greenq.Window{
					{Start: now.Add(-time.Minute), End: now.Add(400 * time.Millisecond)},
					{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)},
				}}})
			errc := b.process(context.Background(), id)
			readFifo(t, ff)
			require.NoError(t, waitErr(t, errc))
			f := b.waitFinish(t)
			require.Equal(t, greenq.StatePlanned, f.f.State, f.f.Error)
			require.Equal(t, tt.exit, f.f.ExitCode)
			require.Nil(t, f.f.Receipt, "no receipt until the job ends")
			require.Equal(t, testRegion, f.f.Segment.Region)
			require.True(t, f.f.Segment.End.After(f.f.Segment.Start))
			require.Greater(t, f.f.Segment.EnergyKWh, 0.0)
			if tt.exit != 128+int(syscall.SIGKILL) {
				b, err := os.ReadFile(filepath.Join(b.w.cfg.CheckpointRoot, id, "state"))
				require.NoError(t, err)
				want := "saved\n"
				if tt.exit == 0 {
					want = ControlPause + "\n" // the control file said why
				}
				require.Equal(t, want, string(b))
			}
		})
	}
}

func TestLastSegmentRunsToCompletion(t *testing.T) {
	t.Parallel()
	now := time.Now()
	j := &greenq.Job{Interruptible: true, Plan: &greenq.Plan{Segments: []greenq.Window{
		{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)},
		{Start: now.Add(-time.Minute), End: now.Add(time.Minute)},
	}}}
	_, ok := pauseAt(j, now)
	require.False(t, ok)
	j.Plan.Segments = append(j.Plan.Segments, greenq.Window{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)})
	end, ok := pauseAt(j, now)
	require.True(t, ok)
	require.Equal(t, now.Add(time.Minute), end)
}

// TestPlannerPausePausesOnlyInterruptibleJobs: the planner's pause event
// pauses a running interruptible job in the middle of its planned window
// (SIGTERM, control file "pause", back to planned, no receipt) and leaves
// a job that is not interruptible running to its end.
func TestPlannerPausePausesOnlyInterruptibleJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Grace = 5 * time.Second })
	now := time.Now()
	window := &greenq.Plan{Region: testRegion, Start: now.Add(-time.Minute), End: now.Add(time.Hour)}
	started, release := fifo(t, b.dir), fifo(t, b.dir)
	plain := b.submit(t, greenq.Job{Plan: window, Command: []string{"sh", "-c", `echo > "$0"; read x < "$1"`, started, release}})
	plainErr := b.process(context.Background(), plain)
	readFifo(t, started)
	ff := fifo(t, b.dir)
	intr := b.submit(t, greenq.Job{Interruptible: true, Plan: window, Command: []string{"sh", "-c",
		`trap 'cat "$GREENQ_CONTROL_FILE" > "$GREENQ_CHECKPOINT_DIR/state"; exit 0' TERM; echo > "$0"; while :; do sleep 0.05; done`, ff}})
	intrErr := b.process(context.Background(), intr)
	readFifo(t, ff)

	b.fs.pause(plain) // events are handled in order: this one before the next
	b.fs.pause(intr)
	require.NoError(t, waitErr(t, intrErr))
	f := b.waitFinish(t)
	require.Equal(t, intr, f.id)
	require.Equal(t, greenq.StatePlanned, f.f.State, f.f.Error)
	require.Nil(t, f.f.Receipt, "paused: no receipt until the job ends")
	state, err := os.ReadFile(filepath.Join(b.w.cfg.CheckpointRoot, intr, "state"))
	require.NoError(t, err)
	require.Equal(t, ControlPause+"\n", string(state))

	require.NoError(t, os.WriteFile(release, []byte("go\n"), 0o600))
	require.NoError(t, waitErr(t, plainErr))
	f = b.waitFinish(t)
	require.Equal(t, plain, f.id)
	require.Equal(t, greenq.StateSucceeded, f.f.State, "a job that is not interruptible is never paused")
	require.Zero(t, f.f.ExitCode)
}

func TestResumedJobReceiptCoversAllSegments(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := time.Now()
	prev := greenq.RunSegment{Region: testRegion, Worker: "w0", Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour), EnergyKWh: 0.3}
	id := b.submit(t, greenq.Job{State: greenq.StateReleased, Interruptible: true, Segments: []greenq.RunSegment{prev},
		Command: []string{"true"}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	rc := b.waitFinish(t).f.Receipt
	require.NotNil(t, rc)
	require.Greater(t, rc.EnergyKWh, 0.3)
	require.Greater(t, rc.DurationS, 3600.0)
}

func TestDrainPausesInterruptibleAndAbandonKills(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Grace = 5 * time.Second })
	ffI, ffN := fifo(t, b.dir), fifo(t, b.dir)
	idI := b.submit(t, greenq.Job{Interruptible: true,
		Command: []string{"sh", "-c", `trap 'exit 143' TERM; echo > "$0"; while :; do sleep 0.05; done`, ffI}})
	idN := b.submit(t, greenq.Job{Command: []string{"sh", "-c", grandchildScript, ffN}})
	errI, errN := b.process(context.Background(), idI), b.process(context.Background(), idN)
	readFifo(t, ffI)
	pid, err := strconv.Atoi(readFifo(t, ffN))
	require.NoError(t, err)

	b.w.drain()
	require.NoError(t, waitErr(t, errI))
	f := b.waitFinish(t)
	require.Equal(t, idI, f.id)
	require.Equal(t, greenq.StatePlanned, f.f.State)

	b.w.abandonRunning()
	require.NoError(t, waitErr(t, errN))
	require.Empty(t, b.fs.finishes, "an abandoned job is not reported: asynq runs it again")
	require.Equal(t, greenq.StateRunning, b.fs.job(idN).State)
	requireGone(t, pid)
}

func TestGPUsNeverShared(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ff1, ff2 := fifo(t, b.dir), fifo(t, b.dir)
	script := `echo "$CUDA_VISIBLE_DEVICES" > "$0"; sleep 1000`
	id1 := b.submit(t, greenq.Job{Command: []string{"sh", "-c", script, ff1}})
	id2 := b.submit(t, greenq.Job{Command: []string{"sh", "-c", script, ff2}})
	e1, e2 := b.process(context.Background(), id1), b.process(context.Background(), id2)
	g1, g2 := readFifo(t, ff1), readFifo(t, ff2)
	require.ElementsMatch(t, []string{"0", "1"}, []string{g1, g2})
	require.Equal(t, 2, b.w.pool.busy())
	b.fs.cancel(id1)
	b.fs.cancel(id2)
	require.NoError(t, waitErr(t, e1))
	require.NoError(t, waitErr(t, e2))
	require.Zero(t, b.w.pool.busy())
}

func TestGPUPoolWaits(t *testing.T) {
	t.Parallel()
	p := newGPUPool(2)
	a, err := p.acquire(context.Background(), 2)
	require.NoError(t, err)
	got := make(chan []int)
	go func() {
		g, _ := p.acquire(context.Background(), 1)
		got <- g
	}()
	p.release(a[:1])
	require.Equal(t, []int{a[0]}, <-got)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.acquire(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	require.Panics(t, func() { p.release([]int{a[0], a[0]}) })
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}, newFakeStore(), nil)
	require.Equal(t, greenq.CodeInvalidArgument, greenq.ErrorCodeOf(err))
	require.ErrorContains(t, err, "region")
	_, err = New(Config{Region: "r", PUE: map[string]float64{"r": 0.5}}, newFakeStore(), nil)
	require.ErrorContains(t, err, "pue")
	w, err := New(Config{Region: "r", Meter: &EstimateMeter{}}, newFakeStore(), nil)
	require.NoError(t, err)
	c := w.Config()
	require.Equal(t, 1, c.GPUs)
	require.Equal(t, 1, c.Concurrency)
	require.Equal(t, 30*time.Second, c.Grace)
	require.Equal(t, 300.0, c.DefaultPowerW)
	require.Equal(t, DefaultEmbodiedGCO2PerGPUHour, c.EmbodiedGCO2PerGPUHour)
}

func TestFunctionalUnits(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.submit(t, greenq.Job{FunctionalUnit: "1000 images",
		Command: []string{"sh", "-c", `echo 4 > "$GREENQ_FUNCTIONAL_UNITS_FILE"`}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	rc := b.waitFinish(t).f.Receipt
	require.NotNil(t, rc)
	require.Equal(t, "1000 images", rc.FunctionalUnit)
	require.Greater(t, rc.EmbodiedGCO2, 0.0)
	require.Equal(t, (rc.GCO2+rc.EmbodiedGCO2)/4, rc.SCI)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *Config) { c.Registerer = reg })
	// A second worker (another region) shares the registry.
	_, err := New(Config{Region: "other", Meter: &EstimateMeter{}, Registerer: reg}, b.fs, nil)
	require.NoError(t, err)
	for _, cmd := range []string{"true", "false"} {
		id := b.submit(t, greenq.Job{Command: []string{cmd}})
		require.NoError(t, waitErr(t, b.process(context.Background(), id)))
		b.waitFinish(t)
	}
	got := gather(t, reg)
	require.Equal(t, 1.0, got["greenq_worker_jobs_total{outcome=succeeded,region=test-r}"])
	require.Equal(t, 1.0, got["greenq_worker_jobs_total{outcome=failed,region=test-r}"])
	require.Greater(t, got["greenq_worker_energy_kwh_total{region=test-r,source=estimate}"], 0.0)
	require.Contains(t, got, "greenq_worker_gco2_total{region=test-r}")
	require.Contains(t, got, "greenq_worker_saved_gco2_total{region=test-r}")
	require.Contains(t, got, "greenq_worker_nvml_read_errors_total{region=test-r}")
	require.Equal(t, 0.0, got["greenq_worker_busy_gpus{region=test-r,worker=w1}"])
	require.Equal(t, 2.0, got["greenq_worker_gpus{region=test-r,worker=w1}"])
	require.Equal(t, 1.0, got["greenq_worker_gpus{region=other,worker="+hostID()+"}"])
}

// gather flattens a registry to "name{label=value,...}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func hostID() string {
	h, _ := os.Hostname()
	return h + "-" + strconv.Itoa(os.Getpid())
}

func TestRunWithoutRedis(t *testing.T) {
	t.Parallel()
	w, err := New(Config{Region: "r", Meter: &EstimateMeter{}}, newFakeStore(), asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	require.NoError(t, err)
	require.ErrorContains(t, w.Run(context.Background()), "connect to redis")
}
