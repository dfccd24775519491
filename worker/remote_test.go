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
	// onStart plays what happens where the run goes (greenq meter posting
	// its reading).
	onStart func(executor.Spec)
	mu      sync.Mutex
	specs   []executor.Spec
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
	if f.onStart != nil {
		f.onStart(s)
	}
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
	require.Equal(t, 4, hb.LargestNode)
	require.Equal(t, 4, hb.JobGPUs(), "a job gets one node's GPUs, not the cluster's")
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// With the API's URL, a cluster run gets a job token; the reading greenq
// meter posts with it wins over the file's, and the receipt says so.
func TestClusterRunUsesThePostedReading(t *testing.T) {
	t.Parallel()
	file := &executor.Reading{GPUKWh: 0.9, Source: SourceEstimate, CPUSource: SourceEstimate, Meter: MeterGreenq}
	fc := &fakeCluster{exit: executor.Exit{Code: 0, Energy: file}}
	var b bundle
	posted := make(chan bool, 1)
	fc.onStart = func(s executor.Spec) {
		posted <- b.fs.post(s.JobID, envValue(s.Env, EnvJobToken), greenq.EnergyReading{GPUKWh: 0.25, CPUKWh: 0.05,
			Source: SourceNVML, CPUSource: SourceRAPL, Meter: MeterGreenq})
	}
	b = setup(t, func(c *Config) { c.Executor = fc; c.GPUs = 4; c.APIURL = "http://greenq-api:8080" })
	id := b.submit(t, greenq.Job{GPUs: 1, Command: []string{"train"}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	require.True(t, <-posted, "the run's env holds the job's token")
	s := fc.spec()
	require.Equal(t, "http://greenq-api:8080", envValue(s.Env, EnvAPIURL))
	require.NotEmpty(t, s.ReadingFile)
	rc := f.f.Receipt
	require.Equal(t, MeterGreenqAPI, rc.EnergyMeter)
	require.Equal(t, SourceNVML, rc.EnergySource)
	require.InDelta(t, 0.25, rc.GPUEnergyKWh, 1e-12)
	_, err := b.fs.TakeEnergy(context.Background(), id)
	require.NoError(t, err)
	require.False(t, b.fs.post(id, envValue(s.Env, EnvJobToken), greenq.EnergyReading{}), "the token is revoked once taken")
}

// Without the API's URL no token is minted: the file's reading counts.
func TestClusterRunWithoutAPIURLHasNoToken(t *testing.T) {
	t.Parallel()
	fc := &fakeCluster{exit: executor.Exit{Code: 0, Energy: &executor.Reading{GPUKWh: 0.5, Source: SourceNVML, Meter: MeterGreenq}}}
	b := clusterWorker(t, fc)
	id := b.submit(t, greenq.Job{GPUs: 1, Command: []string{"train"}})
	require.NoError(t, waitErr(t, b.process(context.Background(), id)))
	f := b.waitFinish(t)
	require.Empty(t, envValue(fc.spec().Env, EnvJobToken))
	require.Equal(t, MeterGreenq, f.f.Receipt.EnergyMeter)
}

func TestChooseReading(t *testing.T) {
	t.Parallel()
	nvml := &executor.Reading{Source: SourceNVML, Meter: MeterGreenq}
	est := &executor.Reading{Source: SourceEstimate, Meter: MeterGreenq}
	slurm := &executor.Reading{Source: SourceSlurm, Meter: MeterSlurm}
	for _, c := range []struct {
		name              string
		posted, collected *executor.Reading
		want              *executor.Reading
		meter             string
	}{
		{"measured post wins over the file", nvml, est, nvml, MeterGreenqAPI},
		{"measured post wins over slurm", nvml, slurm, nvml, MeterGreenqAPI},
		{"slurm's accounting beats an estimated post", est, slurm, slurm, MeterSlurm},
		{"the file beats an estimated post", est, nvml, nvml, MeterGreenq},
		{"an estimated post beats nothing", est, nil, est, MeterGreenqAPI},
		{"an estimated post beats an estimated file", est, &executor.Reading{Source: SourceEstimate, Meter: MeterGreenq}, est, MeterGreenqAPI},
		{"the file alone", nil, est, est, MeterGreenq},
		{"a reading without a meter is greenq meter's", nil, &executor.Reading{Source: SourceNVML}, &executor.Reading{Source: SourceNVML}, MeterGreenq},
		{"nothing", nil, nil, nil, ""},
	} {
		got, meter := chooseReading(c.posted, c.collected)
		require.Equal(t, c.want, got, c.name)
		require.Equal(t, c.meter, meter, c.name)
	}
}
