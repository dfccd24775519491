package worker

import (
	"time"

	"github.com/greenq/greenq"

	"github.com/greenq/greenq/worker/executor"
)

// Where a receipt's energy was measured (greenq.Receipt.EnergyMeter).
const (
	// MeterWorker: by the worker, on the machine the job ran on (the
	// process and container executors).
	MeterWorker = "worker"
	// MeterGreenq: by `greenq meter`, wrapping the command where it ran (a
	// Slurm node, a pod), with the same code as MeterWorker.
	MeterGreenq = "greenq-meter"
	// MeterGreenqAPI: by `greenq meter` where the job ran, posted to the
	// API with the run's job token (the file greenq meter writes is
	// MeterGreenq).
	MeterGreenqAPI = "greenq-meter-api"
	// MeterSlurm: by the Slurm cluster's energy accounting
	// (ConsumedEnergy).
	MeterSlurm = "slurm"
	// MeterNone: the job ran on another machine and nothing measured it
	// there; the GPU energy is the estimate (GPUs × power × time).
	MeterNone = "none"
)

// SourceSlurm labels energy from a Slurm cluster's accounting
// (ConsumedEnergy): the node's energy over the job, not split by device.
const SourceSlurm = greenq.EnergySlurm

// Metering is one run's energy measurement in progress: the GPUs through
// an EnergyMeter (NVML, else an estimate) and the CPU and memory through a
// CPUMeter (RAPL, else an estimate). The worker meters every run it starts
// with it, and `greenq meter` meters the command it wraps where the job
// runs: one metering code for both.
type Metering struct {
	gpus  []int
	gpu   Measurement
	cpu   *CPUMeasurement
	now   func() time.Time
	start time.Time
}

// StartMetering starts measuring gpus (this machine's indices, as NVML
// numbers them) with gpu, and this machine's CPU with cpu. fallbackPowerW
// is the draw per GPU assumed where nothing better is known.
func StartMetering(gpu EnergyMeter, cpu *CPUMeter, gpus []int, fallbackPowerW float64) *Metering {
	_, _, now, _ := cpu.defaults()
	return &Metering{gpus: gpus, gpu: gpu.Start(gpus, fallbackPowerW), cpu: cpu.Start(), now: now, start: now()}
}

// Stop ends the measurement. jobCPU is the CPU time the job's processes
// used (0 when unknown), its share of the machine's RAPL energy. Call it
// once.
func (m *Metering) Stop(jobCPU time.Duration) (GPUReading, CPUReading) {
	return m.gpu.Stop(), m.cpu.Stop(jobCPU)
}

// StopReading is Stop as the Reading `greenq meter` writes, with exitCode
// the command's exit status.
func (m *Metering) StopReading(jobCPU time.Duration, exitCode int) executor.Reading {
	g, c := m.Stop(jobCPU)
	end := m.now()
	r := NewReading(g, c)
	r.Meter, r.GPUs, r.ExitCode = MeterGreenq, append([]int{}, m.gpus...), exitCode
	r.Start, r.End, r.DurationS = m.start, end, end.Sub(m.start).Seconds()
	return r
}

// NewReading returns the readings of a GPU and a CPU measurement as one
// executor.Reading (without Meter, times or exit code).
func NewReading(g GPUReading, c CPUReading) executor.Reading {
	return executor.Reading{
		GPUKWh: g.KWh, CPUKWh: c.CPUKWh, RAMKWh: c.RAMKWh,
		Source: g.Source, CPUSource: c.Source, GPUModel: g.Model,
		UtilizationPct: g.UtilizationPct, MemoryUsedMiB: g.MemoryUsedMiB,
		Samples: g.UtilizationSamples, ReadErrors: g.ReadErrors,
	}
}

// readingParts splits a Reading back into the GPU and CPU readings a
// receipt is computed from. A source left empty is an estimate.
func readingParts(r executor.Reading) (GPUReading, CPUReading) {
	g := GPUReading{KWh: r.GPUKWh, Source: r.Source, Model: r.GPUModel, UtilizationPct: r.UtilizationPct,
		MemoryUsedMiB: r.MemoryUsedMiB, UtilizationSamples: r.Samples, ReadErrors: r.ReadErrors}
	c := CPUReading{CPUKWh: r.CPUKWh, RAMKWh: r.RAMKWh, Source: r.CPUSource}
	g.Source, c.Source = g.Source.OrEstimate(), c.Source.OrEstimate()
	return g, c
}
