package worker

import (
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// Energy source labels (greenq.EnergySource), from the best measurement to
// the weakest.
const (
	SourceNVML              = greenq.EnergyNVML              // NVML total-energy counter
	SourceNVMLPowerSampling = greenq.EnergyNVMLPowerSampling // NVML power samples integrated over time
	SourceEstimate          = greenq.EnergyEstimate          // power figure × time, no measurement
	SourceRAPL              = greenq.EnergyRAPL              // RAPL counters, the job's share by CPU time
)

// EnergyMeter measures the energy of GPUs, by index, over a run.
// Implementations are safe for concurrent runs on disjoint GPUs.
type EnergyMeter interface {
	// Start begins metering the given GPUs. fallbackPowerW is the draw per
	// GPU to assume where nothing better is known.
	Start(gpus []int, fallbackPowerW float64) Measurement
	// Model returns the GPU model name ("" when unknown).
	Model() string
	// Close releases the meter (NVML shutdown).
	Close() error
}

// Measurement is one metering in progress.
type Measurement interface {
	// Stop ends the metering and returns what was measured. Call it once.
	Stop() GPUReading
}

// GPUReading is what a Measurement measured.
type GPUReading struct {
	KWh float64
	// Source is SourceNVML, SourceNVMLPowerSampling or SourceEstimate: the
	// weakest source used for any of the GPUs.
	Source greenq.EnergySource
	Model  string
	// UtilizationPct and MemoryUsedMiB are means over the samples (summed
	// over GPUs for memory, averaged for utilisation); 0 when unknown.
	UtilizationPct float64
	MemoryUsedMiB  float64
	// UtilizationSamples counts the utilisation samples over all GPUs; 0
	// means utilisation is unknown, not idle.
	UtilizationSamples int
	// ReadErrors counts failed NVML reads during the run.
	ReadErrors int
}

// sourceRank orders sources from strongest (0) to weakest.
func sourceRank(s greenq.EnergySource) int {
	switch s {
	case SourceNVML:
		return 0
	case SourceNVMLPowerSampling:
		return 1
	default:
		return 2
	}
}

// weaker returns the weaker of two source labels ("" counts as unset).
func weaker(a, b greenq.EnergySource) greenq.EnergySource {
	if a == "" {
		return b
	}
	if b == "" || sourceRank(a) >= sourceRank(b) {
		return a
	}
	return b
}

// joulesPerKWh converts joules to kWh.
const joulesPerKWh = 3.6e6

// EstimateMeter is the meter of last resort: the given power per GPU for
// the run's wall time, labelled SourceEstimate.
type EstimateMeter struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// GPUModel is reported as the model, if known.
	GPUModel string
}

var _ EnergyMeter = (*EstimateMeter)(nil)

// Start implements EnergyMeter.
func (m *EstimateMeter) Start(gpus []int, fallbackPowerW float64) Measurement {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	return &estimateMeasurement{now: now, start: now(), n: len(gpus), powerW: fallbackPowerW, model: m.GPUModel}
}

// Model implements EnergyMeter.
func (m *EstimateMeter) Model() string { return m.GPUModel }

// Close implements EnergyMeter.
func (m *EstimateMeter) Close() error { return nil }

type estimateMeasurement struct {
	now    func() time.Time
	start  time.Time
	n      int
	powerW float64
	model  string
}

func (e *estimateMeasurement) Stop() GPUReading {
	d := e.now().Sub(e.start)
	return GPUReading{
		KWh:    float64(e.n) * e.powerW * d.Seconds() / joulesPerKWh,
		Source: SourceEstimate,
		Model:  e.model,
	}
}

// tdpTable holds board power (W) of common data-centre GPUs, matched by
// substring of the NVML name, most specific first. From the vendors' data
// sheets; used only when NVML gives neither energy, power nor a power limit.
var tdpTable = []struct {
	match string
	watts float64
}{
	{"B200", 1000},
	{"H200", 700},
	{"H100 PCIe", 350},
	{"H100 NVL", 400},
	{"H100", 700},
	{"A100-PCIE", 250},
	{"A100 PCIe", 250},
	{"A100", 400},
	{"L40S", 350},
	{"L40", 300},
	{"A10G", 300},
	{"A10", 150},
	{"L4", 72},
	{"T4", 70},
	{"V100", 300},
	{"A40", 300},
	{"A30", 165},
}

// modelTDP returns the TDP in watts of a GPU model name, 0 when unknown.
func modelTDP(name string) float64 {
	for _, e := range tdpTable {
		if strings.Contains(name, e.match) {
			return e.watts
		}
	}
	return 0
}
