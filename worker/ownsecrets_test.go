package worker

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/executor"
)

// storeExecutor is an executor with its own secret store whose runs
// pause their own way (as the Kubernetes executor's): a run ends when it
// is paused or signalled with SIGTERM, and records which.
type storeExecutor struct {
	mu    sync.Mutex
	specs []executor.Spec
	calls []string
}

var (
	_ executor.ResolvesSecrets = (*storeExecutor)(nil)
	_ executor.Pauser          = (*storeRun)(nil)
)

func (e *storeExecutor) ResolvesSecrets() bool { return true }

func (e *storeExecutor) Start(_ context.Context, s executor.Spec) (executor.Process, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.specs = append(e.specs, s)
	return &storeRun{e: e, done: make(chan int, 1)}, nil
}

func (e *storeExecutor) record(call string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, call)
}

type storeRun struct {
	e    *storeExecutor
	done chan int
}

func (r *storeRun) Pause() error { r.e.record("pause"); r.end(0); return nil }

func (r *storeRun) Signal(sig syscall.Signal) error {
	r.e.record(sig.String())
	r.end(128 + int(sig))
	return nil
}

func (r *storeRun) end(code int) {
	select {
	case r.done <- code:
	default:
	}
}

func (r *storeRun) Wait() executor.Exit { return executor.Exit{Code: <-r.done} }

// For an executor with its own secret store the worker resolves nothing
// (it has no --secrets-dir): the names go in Spec.Secrets, no value in
// Env; the job's grace goes along. A pause calls Pause, a cancel SIGTERM.
func TestOwnSecretStoreAndPause(t *testing.T) {
	t.Parallel()
	ex := &storeExecutor{}
	b := setup(t, func(c *Config) { c.Executor = ex; c.Grace = 300 * time.Millisecond })
	now := time.Now()
	id := b.submit(t, greenq.Job{Interruptible: true, Command: []string{"train"},
		JobSpec: greenq.JobSpec{Secrets: map[string]string{"HF_TOKEN": "hf-token"}, Env: map[string]string{"EPOCHS": "3"}, GraceS: 7},
		Plan: &greenq.Plan{Region: testRegion, Segments: []greenq.Window{
			{Start: now.Add(-time.Minute), End: now.Add(200 * time.Millisecond)},
			{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)},
		}}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	require.Equal(t, greenq.StatePlanned, f.f.State, f.f.Error)

	ex.mu.Lock()
	s, calls := ex.specs[0], ex.calls
	ex.mu.Unlock()
	require.Equal(t, map[string]string{"HF_TOKEN": "hf-token"}, s.Secrets)
	require.Contains(t, s.Env, "EPOCHS=3")
	for _, kv := range s.Env {
		require.False(t, strings.HasPrefix(kv, "HF_TOKEN="), "the worker resolved a secret it should pass by name")
	}
	require.Equal(t, 7*time.Second, s.Grace)
	require.Equal(t, []string{"pause"}, calls, "a pause goes through Pauser, not SIGTERM")

	// A cancel is a stop, not a pause: SIGTERM.
	ex2 := &storeExecutor{}
	b = setup(t, func(c *Config) { c.Executor = ex2 })
	id = b.submit(t, greenq.Job{Interruptible: true, Command: []string{"train"}})
	errc := b.process(context.Background(), id)
	require.Eventually(t, func() bool { ex2.mu.Lock(); defer ex2.mu.Unlock(); return len(ex2.specs) == 1 }, 10*time.Second, 10*time.Millisecond)
	b.fs.cancel(id)
	require.NoError(t, waitErr(t, errc))
	require.Equal(t, greenq.StateCancelled, b.waitFinish(t).f.State)
	ex2.mu.Lock()
	defer ex2.mu.Unlock()
	require.Equal(t, []string{syscall.SIGTERM.String()}, ex2.calls)
}
