package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/executor"
)

// fakeCluster is an executor whose scheduler picks the GPUs (as Slurm's):
// each run ends after 50 ms with exit.
type fakeCluster struct {
	exit     executor.Exit
	capacity executor.GPUCapacity
	mu       sync.Mutex
	specs    []executor.Spec
}

var (
	_ executor.AllocatesGPUs = (*fakeCluster)(nil)
	_ executor.Capacity      = (*fakeCluster)(nil)
)

func (f *fakeCluster) AllocatesGPUs() bool { return true }

func (f *fakeCluster) GPUCapacity(context.Context) (executor.GPUCapacity, error) {
	return f.capacity, nil
}

func (f *fakeCluster) Start(_ context.Context, s executor.Spec) (executor.Process, error) {
	f.mu.Lock()
	f.specs = append(f.specs, s)
	f.mu.Unlock()
	return &fakeRun{exit: f.exit, done: time.After(50 * time.Millisecond)}, nil
}

func (f *fakeCluster) spec() executor.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.specs[len(f.specs)-1]
}

type fakeRun struct {
	exit executor.Exit
	done <-chan time.Time
}

func (r *fakeRun) Signal(syscall.Signal) error { return nil }
func (r *fakeRun) Wait() executor.Exit         { <-r.done; return r.exit }

func clusterWorker(t *testing.T, fc *fakeCluster) bundle {
	return setup(t, func(c *Config) { c.Executor = fc; c.GPUs = 4 })
}

// A job on a cluster gets no GPU indices and no CUDA_VISIBLE_DEVICES from
// the worker (the scheduler sets them), but its GPU count, deadline and
// estimate; its receipt uses the reading from where it ran, and says so.
func TestClusterRunUsesItsReading(t *testing.T) {
	t.Parallel()
	fc := &fakeCluster{exit: executor.Exit{Code: 0, Energy: &executor.Reading{GPUKWh: 0.5, CPUKWh: 0.1, RAMKWh: 0.01,
		Source: SourceNVML, CPUSource: SourceRAPL, Meter: MeterGreenq, GPUModel: "NVIDIA H100", Samples: 12, UtilizationPct: 80}}}
	b := clusterWorker(t, fc)
	deadline := time.Now().Add(time.Hour).Truncate(time.Second)
	id := b.submit(t, greenq.Job{GPUs: 3, Deadline: deadline, DurationEstimateS: 600, Command: []string{"train"},
		JobSpec: greenq.JobSpec{WarnSignal: "USR1", WarnBeforeS: 300}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	require.Equal(t, greenq.StateSucceeded, f.f.State, f.f.Error)

	s := fc.spec()
	require.Empty(t, s.GPUs)
	require.Equal(t, 3, s.GPUCount)
	require.True(t, s.Deadline.Equal(deadline))
	require.Equal(t, 10*time.Minute, s.Estimate)
	require.Equal(t, executor.Warning{Signal: syscall.SIGUSR1, Before: 5 * time.Minute}, s.Warn)
	env := strings.Join(s.Env, "\n")
	require.NotContains(t, env, "CUDA_VISIBLE_DEVICES=")
	require.Contains(t, env, "CUDA_DEVICE_ORDER=PCI_BUS_ID")
	require.Contains(t, env, "GREENQ_JOB_ID="+id)

	rc := f.f.Receipt
	require.Equal(t, SourceNVML, rc.EnergySource)
	require.Equal(t, SourceRAPL, rc.CPUEnergySource)
	require.Equal(t, MeterGreenq, rc.EnergyMeter)
	require.InDelta(t, 0.5, rc.GPUEnergyKWh, 1e-12)
	require.InDelta(t, 0.61, f.f.Segment.EnergyKWh, 1e-12)
	require.Equal(t, "NVIDIA H100", rc.GPUModel)
	require.Zero(t, b.w.pool.busy(), "the worker's pool is not used")
}

// Without a reading, the job's GPUs are estimated (GPUs × power × time) and
// the receipt says nothing measured them.
func TestClusterRunWithoutReadingIsEstimated(t *testing.T) {
	t.Parallel()
	b := clusterWorker(t, &fakeCluster{exit: executor.Exit{Code: 0}})
	id := b.submit(t, greenq.Job{GPUs: 2, Command: []string{"train"}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	rc := f.f.Receipt
	require.Equal(t, SourceEstimate, rc.EnergySource)
	require.Equal(t, MeterNone, rc.EnergyMeter)
	want := 2 * 300 * f.f.Segment.End.Sub(f.f.Segment.Start).Seconds() / joulesPerKWh
	require.InDelta(t, want, rc.GPUEnergyKWh, want*0.2)
}

// A run lost with its node (a node failure, a preemption) is planned
// again, not failed.
func TestLostRunIsPlannedAgain(t *testing.T) {
	t.Parallel()
	b := clusterWorker(t, &fakeCluster{exit: executor.Exit{Code: -1,
		Err: fmt.Errorf("slurm job 7 ended NODE_FAIL: %w", executor.ErrLost)}})
	id := b.submit(t, greenq.Job{GPUs: 1, Command: []string{"train"}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	require.Equal(t, greenq.StatePlanned, f.f.State)
	require.Nil(t, f.f.Receipt)
	require.Contains(t, b.fs.log(id), "NODE_FAIL")
	require.Contains(t, b.fs.log(id), "planned again")
}

// The heartbeat offers what the cluster has free plus what this worker's
// jobs hold, as the executor reports it.
func TestHeartbeatOffersClusterCapacity(t *testing.T) {
	t.Parallel()
	b := clusterWorker(t, &fakeCluster{capacity: executor.GPUCapacity{Offered: 3, Busy: 2, Largest: 4, Total: 8}})
	b.w.heartbeat(context.Background())
	hb := <-b.fs.beats
	require.Equal(t, 3, hb.GPUs)
	require.Equal(t, 2, hb.Busy)
}
