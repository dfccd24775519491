package greenq

import (
	"math"
	"slices"
	"strings"
	"time"
)

// RestsOnForecast reports whether r's intensity came, for some of the run,
// from forecast or estimated values rather than the provider's actuals:
// some label of IntensitySource ("file:actual+forecast", "plan:forecast")
// names a forecast or an estimate. Such a receipt is restated from actuals
// when they arrive.
func (r Receipt) RestsOnForecast() bool {
	for _, l := range strings.Split(r.IntensitySource, ",") {
		i := strings.LastIndex(l, ":")
		if i < 0 {
			continue
		}
		for _, k := range strings.Split(l[i+1:], "+") {
			if k == "forecast" || k == "estimate" {
				return true
			}
		}
	}
	return false
}

// EnergySource labels how an energy figure of a receipt was obtained
// (Receipt.EnergySource for the GPUs, CPUEnergySource for the CPU and
// memory). Receipts store it as a plain string, so every receipt written
// before the type existed reads as one.
type EnergySource string

// Energy sources, from the best measurement to the weakest.
const (
	// EnergyNVML is NVML's total-energy counter, read at start and end.
	EnergyNVML EnergySource = "nvml"
	// EnergyNVMLPowerSampling is NVML power samples integrated over time.
	EnergyNVMLPowerSampling EnergySource = "nvml-power-sampling"
	// EnergyRAPL is the RAPL counters, the job's share by its CPU time.
	EnergyRAPL EnergySource = "rapl"
	// EnergySlurm is a Slurm cluster's accounting (ConsumedEnergy): the
	// node's energy over the job, not split by device.
	EnergySlurm EnergySource = "slurm"
	// EnergyEstimate is a power figure × time: nothing was measured.
	EnergyEstimate EnergySource = "estimate"
)

// Measured reports whether s names a measurement (NVML, RAPL, a
// cluster's accounting) rather than an estimate. An empty or unknown label
// is not a measurement: a receipt claims "measured" only for a source
// greenq knows measures.
func (s EnergySource) Measured() bool {
	switch EnergySource(strings.ToLower(strings.TrimSpace(string(s)))) {
	case EnergyNVML, EnergyNVMLPowerSampling, EnergyRAPL, EnergySlurm:
		return true
	}
	return false
}

// OrEstimate is s, or EnergyEstimate where s is empty (a reading that
// labelled nothing measured nothing).
func (s EnergySource) OrEstimate() EnergySource {
	if s == "" {
		return EnergyEstimate
	}
	return s
}

// EnergyReading is the energy a job used, as measured where it ran:
// `greenq meter` writes one as JSON (to a file, or posted to the API with
// the job's token), and a Slurm cluster's accounting gives one.
type EnergyReading struct {
	GPUKWh float64 `json:"gpu_energy_kwh"`
	CPUKWh float64 `json:"cpu_energy_kwh"`
	RAMKWh float64 `json:"ram_energy_kwh"`
	// Source labels the GPU figure: EnergyNVML, EnergyNVMLPowerSampling,
	// EnergyEstimate, or EnergySlurm (the node's energy, all devices in
	// GPUKWh).
	Source EnergySource `json:"energy_source"`
	// CPUSource labels the CPU and RAM figures: rapl, estimate, slurm.
	CPUSource EnergySource `json:"cpu_energy_source"`
	// Meter is what measured: "greenq-meter" or "slurm".
	Meter    string `json:"meter"`
	Host     string `json:"host,omitempty"`
	GPUModel string `json:"gpu_model,omitempty"`
	// GPUs are the node's GPU indices measured.
	GPUs      []int     `json:"gpus"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	DurationS float64   `json:"duration_s"`
	// UtilizationPct and MemoryUsedMiB are means over Samples.
	UtilizationPct float64 `json:"gpu_utilization_pct"`
	MemoryUsedMiB  float64 `json:"gpu_memory_used_mib"`
	Samples        int     `json:"samples"`
	ReadErrors     int     `json:"read_errors"`
	// ExitCode is the command's exit status (128+N when killed by signal N).
	ExitCode int `json:"exit_code"`
}

// MaxEnergyKWh bounds each figure of an EnergyReading the API accepts: a
// job of MaxGPUs GPUs at 2 kW each for a year is well under it.
const MaxEnergyKWh = 1e7

// Validate refuses a reading no meter writes: a negative, non-finite or
// absurd figure, an unknown source, an end before the start. The error is
// a *Error with CodeInvalidArgument naming the JSON field.
func (r EnergyReading) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"gpu_energy_kwh", r.GPUKWh}, {"cpu_energy_kwh", r.CPUKWh}, {"ram_energy_kwh", r.RAMKWh},
		{"duration_s", r.DurationS}, {"gpu_utilization_pct", r.UtilizationPct}, {"gpu_memory_used_mib", r.MemoryUsedMiB}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return Invalid(f.name, "must be a finite number ≥ 0, got %g", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"gpu_energy_kwh", r.GPUKWh}, {"cpu_energy_kwh", r.CPUKWh}, {"ram_energy_kwh", r.RAMKWh}} {
		if f.v > MaxEnergyKWh {
			return Invalid(f.name, "must be at most %g kWh, got %g", MaxEnergyKWh, f.v)
		}
	}
	if r.UtilizationPct > 100 {
		return Invalid("gpu_utilization_pct", "must be between 0 and 100, got %g", r.UtilizationPct)
	}
	for _, f := range []struct {
		name string
		s    EnergySource
		ok   []EnergySource
	}{{"energy_source", r.Source, []EnergySource{EnergyNVML, EnergyNVMLPowerSampling, EnergySlurm, EnergyEstimate}},
		{"cpu_energy_source", r.CPUSource, []EnergySource{EnergyRAPL, EnergySlurm, EnergyEstimate}}} {
		if f.s != "" && !slices.Contains(f.ok, f.s) {
			return Invalid(f.name, "%q is not one of %v", f.s, f.ok)
		}
	}
	if r.Samples < 0 || r.ReadErrors < 0 {
		return Invalid("samples", "samples and read_errors must not be negative")
	}
	if !r.Start.IsZero() && !r.End.IsZero() && r.End.Before(r.Start) {
		return Invalid("end", "%s is before start %s", r.End.Format(time.RFC3339), r.Start.Format(time.RFC3339))
	}
	return nil
}
