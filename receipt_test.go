package greenq_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// Receipts written before greenq.EnergySource existed stored the label as
// a plain string; they must decode and classify as they always did.
func TestEnergySourceMeasuredOldReceipts(t *testing.T) {
	cases := []struct {
		json       string
		gpu, cpu   greenq.EnergySource
		gpuM, cpuM bool
	}{
		{`{"energy_source":"nvml","cpu_energy_source":"rapl"}`, "nvml", "rapl", true, true},
		{`{"energy_source":"nvml-power-sampling","cpu_energy_source":"estimate"}`, "nvml-power-sampling", "estimate", true, false},
		{`{"energy_source":"estimate"}`, "estimate", "", false, false},
		{`{"energy_source":"slurm","cpu_energy_source":"slurm"}`, "slurm", "slurm", true, true},
		{`{"energy_source":""}`, "", "", false, false},
		{`{}`, "", "", false, false},
		{`{"energy_source":"NVML "}`, "NVML ", "", true, false},
		{`{"energy_source":"tdp","cpu_energy_source":"default"}`, "tdp", "default", false, false},
		{`{"energy_source":"estimated"}`, "estimated", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.json, func(t *testing.T) {
			var r greenq.Receipt
			require.NoError(t, json.Unmarshal([]byte(c.json), &r))
			require.Equal(t, c.gpu, r.EnergySource)
			require.Equal(t, c.cpu, r.CPUEnergySource)
			require.Equal(t, c.gpuM, r.EnergySource.Measured())
			require.Equal(t, c.cpuM, r.CPUEnergySource.Measured())
			b, err := json.Marshal(r)
			require.NoError(t, err)
			var back map[string]any
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, string(c.gpu), back["energy_source"], "written back as a plain string")
		})
	}
}

func TestEnergyReadingValidate(t *testing.T) {
	ok := greenq.EnergyReading{GPUKWh: 0.5, CPUKWh: 0.1, Source: greenq.EnergyNVML, CPUSource: greenq.EnergyRAPL, Samples: 3}
	require.NoError(t, ok.Validate())
	cases := []struct {
		name  string
		edit  func(*greenq.EnergyReading)
		field string
	}{
		{"negative gpu", func(r *greenq.EnergyReading) { r.GPUKWh = -1 }, "gpu_energy_kwh"},
		{"nan cpu", func(r *greenq.EnergyReading) { r.CPUKWh = math.NaN() }, "cpu_energy_kwh"},
		{"huge ram", func(r *greenq.EnergyReading) { r.RAMKWh = 2 * greenq.MaxEnergyKWh }, "ram_energy_kwh"},
		{"unknown source", func(r *greenq.EnergyReading) { r.Source = "guess" }, "energy_source"},
		{"rapl for gpu", func(r *greenq.EnergyReading) { r.Source = greenq.EnergyRAPL }, "energy_source"},
		{"nvml for cpu", func(r *greenq.EnergyReading) { r.CPUSource = greenq.EnergyNVML }, "cpu_energy_source"},
		{"utilisation", func(r *greenq.EnergyReading) { r.UtilizationPct = 101 }, "gpu_utilization_pct"},
		{"negative samples", func(r *greenq.EnergyReading) { r.Samples = -1 }, "samples"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			c.edit(&r)
			err := r.Validate()
			var e *greenq.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, greenq.CodeInvalidArgument, e.Code)
			require.Equal(t, c.field, e.Field)
		})
	}
}
