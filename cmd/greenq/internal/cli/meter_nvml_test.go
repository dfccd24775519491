//go:build cgo && linux

package cli

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/worker"
)

// greenq meter reads the GPUs through NVML, with the worker's own meter:
// here go-nvml's mock of a DGX H100 whose GPUs draw 500 W by their energy
// counters.
func TestMeterReadsNVML(t *testing.T) {
	t.Parallel()
	srv := dgxh100.New()
	start := time.Now()
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
			return 1_000_000 + uint64(time.Since(start).Seconds()*500*1000), nvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 90}, nvml.SUCCESS }
		dev.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{Used: 1 << 30}, nvml.SUCCESS }
	}
	gm, err := worker.NewNVMLMeter(srv, worker.MeterOptions{SampleInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	var out bytes.Buffer
	m := &meterRun{gpu: gm, cpu: &worker.CPUMeter{CPUPowerW: 100, RAMPowerW: 10, SampleInterval: 20 * time.Millisecond},
		gpus: []int{0, 1}, powerW: 300, out: filepath.Join(t.TempDir(), "reading.json"), stderr: &out, cmdOut: &out, cmdErr: &out}
	began := time.Now()
	require.Equal(t, 0, m.run([]string{"sleep", "0.5"}), out.String())
	elapsed := time.Since(began).Seconds()
	r := readReading(t, m.out)
	require.Equal(t, worker.SourceNVML, r.Source)
	require.Equal(t, worker.MeterGreenq, r.Meter)
	require.Contains(t, r.GPUModel, "H100")
	require.InDelta(t, 2*500*elapsed/3.6e6, r.GPUKWh, 2*500*0.2/3.6e6, "two GPUs at 500 W")
	require.Positive(t, r.Samples)
	require.InDelta(t, 90, r.UtilizationPct, 0.01)
}
