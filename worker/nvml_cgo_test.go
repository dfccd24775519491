//go:build cgo && linux

package worker

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// gpuFake sets the functions dgxh100 leaves nil. Each reads the bubble's
// clock, so readings follow fake time.
type gpuFake struct {
	energy func(elapsed time.Duration) (uint64, nvml.Return)
	power  func(elapsed time.Duration) (uint32, nvml.Return)
	limit  nvml.Return // SUCCESS: 400 W
	util   uint32
	memMiB uint64
}

func fakeServer(t *testing.T, fakes ...gpuFake) *server.Server {
	t.Helper()
	srv := dgxh100.New()
	start := time.Now()
	for i, f := range fakes {
		d := srv.Devices[i].(*server.Device)
		d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
			if f.energy == nil {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return f.energy(time.Since(start))
		}
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) {
			if f.power == nil {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return f.power(time.Since(start))
		}
		d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) {
			if f.limit != nvml.SUCCESS {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return 400_000, nvml.SUCCESS
		}
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: f.util}, nvml.SUCCESS
		}
		d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Used: f.memMiB << 20}, nvml.SUCCESS
		}
	}
	return srv
}

// counter returns an energy counter starting at base (mJ) that rises at w
// watts; uint64 arithmetic wraps like the device's.
func counter(base uint64, w float64) func(time.Duration) (uint64, nvml.Return) {
	return func(el time.Duration) (uint64, nvml.Return) {
		return base + uint64(el.Seconds()*w*1000), nvml.SUCCESS
	}
}

func kwh(w, seconds float64) float64 { return w * seconds / joulesPerKWh }

func TestNVMLMeter(t *testing.T) {
	t.Parallel()
	const run = 10 * time.Second
	tests := []struct {
		name     string
		fakes    []gpuFake
		gpus     []int
		kwh      float64
		source   greenq.EnergySource
		util     float64
		memMiB   float64
		readErrs bool
	}{
		{
			name:  "energy counter",
			fakes: []gpuFake{{energy: counter(1_000_000, 300), util: 80, memMiB: 1024}},
			gpus:  []int{0}, kwh: kwh(300, 10), source: SourceNVML, util: 80, memMiB: 1024,
		},
		{
			name:  "energy counter wraps",
			fakes: []gpuFake{{energy: counter(math.MaxUint64-1_000_000, 300)}},
			gpus:  []int{0}, kwh: kwh(300, 10), source: SourceNVML,
		},
		{
			name: "energy counter reset by a driver reload counts from zero",
			fakes: []gpuFake{{energy: func(el time.Duration) (uint64, nvml.Return) {
				if el < 5*time.Second {
					return 9_000_000_000 + uint64(el.Seconds()*300_000), nvml.SUCCESS
				}
				return uint64((el - 5*time.Second).Seconds() * 300_000), nvml.SUCCESS
			}}},
			// 4 s counted before the reset (last good read at 4 s), then
			// 5 s since it: the second of the reset is lost.
			gpus: []int{0}, kwh: kwh(300, 9), source: SourceNVML,
		},
		{
			name: "power sampling, trapezoid over a ramp",
			fakes: []gpuFake{{power: func(el time.Duration) (uint32, nvml.Return) {
				return uint32(100_000 + 10_000*el.Seconds()), nvml.SUCCESS // 100 W + 10 W/s
			}}},
			gpus: []int{0}, kwh: (100*10 + 5*100) / joulesPerKWh, source: SourceNVMLPowerSampling,
		},
		{
			name: "two GPUs, the weaker source names the reading",
			fakes: []gpuFake{
				{energy: counter(0, 300), util: 90, memMiB: 1000},
				{power: func(time.Duration) (uint32, nvml.Return) { return 200_000, nvml.SUCCESS }, util: 50, memMiB: 500}},
			gpus: []int{0, 1}, kwh: kwh(500, 10), source: SourceNVMLPowerSampling, util: 70, memMiB: 1500,
		},
		{
			name:  "no energy or power: power limit × utilisation",
			fakes: []gpuFake{{limit: nvml.SUCCESS, util: 50}},
			gpus:  []int{0}, kwh: kwh(200, 10), source: SourceEstimate, util: 50,
		},
		{
			name: "device lost mid-run: extrapolated at its mean power",
			fakes: []gpuFake{{energy: func(el time.Duration) (uint64, nvml.Return) {
				if el > 4*time.Second {
					return 0, nvml.ERROR_GPU_IS_LOST
				}
				return uint64(el.Seconds() * 250_000), nvml.SUCCESS
			}}},
			gpus: []int{0}, kwh: kwh(250, 10), source: SourceEstimate, readErrs: true,
		},
		{
			name:  "device not present: fallback power",
			fakes: []gpuFake{{energy: counter(0, 300)}},
			gpus:  []int{42}, kwh: kwh(123, 10), source: SourceEstimate, readErrs: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				srv := fakeServer(t, tt.fakes...)
				m, err := newNVMLMeter(srv, MeterOptions{SampleInterval: time.Second})
				require.NoError(t, err)
				require.Equal(t, "NVIDIA H100 80GB HBM3", m.Model())
				ms := m.Start(tt.gpus, 123)
				time.Sleep(run)
				r := ms.Stop()
				require.InDelta(t, tt.kwh, r.KWh, 1e-9)
				require.Equal(t, tt.source, r.Source)
				require.InDelta(t, tt.util, r.UtilizationPct, 1e-9)
				if tt.util > 0 {
					require.Positive(t, r.UtilizationSamples, "a measured utilisation says how many samples it rests on")
				}
				require.InDelta(t, tt.memMiB, r.MemoryUsedMiB, 1e-9)
				require.Equal(t, tt.readErrs, r.ReadErrors > 0)
				require.NoError(t, m.Close())
			})
		})
	}
}

func TestNVMLMissingLibrary(t *testing.T) {
	t.Parallel()
	lib := &mock.Interface{
		InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
	}
	_, err := newNVMLMeter(lib, MeterOptions{})
	require.True(t, errors.Is(err, nvml.ERROR_LIBRARY_NOT_FOUND), err)
	require.ErrorContains(t, err, "ERROR_LIBRARY_NOT_FOUND")
}

func TestNVMLNoGPU(t *testing.T) {
	t.Parallel()
	lib := &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
	}
	_, err := newNVMLMeter(lib, MeterOptions{})
	require.ErrorContains(t, err, "no GPU")
}

func TestCounterDelta(t *testing.T) {
	t.Parallel()
	require.Equal(t, 1.0, counterDeltaJ(1000, 2000, 1))
	require.Equal(t, 2.0, counterDeltaJ(math.MaxUint64-999, 1000, 1), "wrap")
	require.Equal(t, 5.0, counterDeltaJ(9_000_000_000, 5000, 1), "reset")
}
