package process_test

import (
	"os"
	"testing"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/executortest"
	"github.com/greenq/greenq/worker/executor/process"
)

func TestMain(m *testing.M) {
	// Stands in for the worker's secrets: the suite checks that none of
	// the executor's variables reach a job.
	os.Setenv("GREENQ_REDIS_URL", "redis://:worker-password@10.0.0.1:6379/0")
	os.Exit(m.Run())
}

func TestProcessExecutor(t *testing.T) {
	t.Parallel()
	executortest.Run(t, executortest.Target{New: func(*testing.T) executor.Executor { return process.New() }})
}

func TestRefusesImages(t *testing.T) {
	t.Parallel()
	_, err := process.New().Start(t.Context(), executor.Spec{Argv: []string{"true"}, Image: "localhost/x:1"})
	if err == nil {
		t.Fatal("the process executor started a job that needs an image")
	}
}
