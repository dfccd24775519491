//go:build cgo && linux

package worker

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// openNVML loads the driver's NVML library.
func openNVML(o MeterOptions) (EnergyMeter, error) {
	return newNVMLMeter(nvml.New(), o)
}

// NewNVMLMeter returns a meter on lib, an NVML library (nvml.New(), or
// go-nvml's mock in tests). It fails when the library does not load or
// finds no GPU.
func NewNVMLMeter(lib nvml.Interface, o MeterOptions) (EnergyMeter, error) {
	m, err := newNVMLMeter(lib, o)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// nvmlMeter meters GPUs through NVML. Code is written against
// nvml.Interface so tests run on go-nvml's mock.
type nvmlMeter struct {
	lib   nvml.Interface
	opt   MeterOptions
	model string
}

var _ EnergyMeter = (*nvmlMeter)(nil)

// newNVMLMeter initialises lib. It fails when the library is missing
// (ERROR_LIBRARY_NOT_FOUND on machines without a driver) or finds no GPU.
func newNVMLMeter(lib nvml.Interface, o MeterOptions) (*nvmlMeter, error) {
	o = o.withDefaults()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("init nvml: %w", ret)
	}
	m := &nvmlMeter{lib: lib, opt: o}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS || n == 0 {
		_ = lib.Shutdown()
		if ret == nvml.SUCCESS {
			return nil, fmt.Errorf("init nvml: no GPU found")
		}
		return nil, fmt.Errorf("count gpus: %w", ret)
	}
	if d, ret := lib.DeviceGetHandleByIndex(0); ret == nvml.SUCCESS {
		if name, ret := d.GetName(); ret == nvml.SUCCESS {
			m.model = name
		}
	}
	return m, nil
}

// Model implements EnergyMeter.
func (m *nvmlMeter) Model() string { return m.model }

// Close implements EnergyMeter.
func (m *nvmlMeter) Close() error {
	if ret := m.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("shut down nvml: %w", ret)
	}
	return nil
}

type gpuMode int

const (
	modeEnergy   gpuMode = iota // total-energy counter
	modePower                   // power samples, trapezoid rule
	modeEstimate                // power limit or TDP × utilisation, or a fixed power
)

// maxPlausibleW bounds one GPU's draw: a counter step implying more is a
// reset, not a wrap.
const maxPlausibleW = 5000

type gpuState struct {
	index   int
	dev     nvml.Device
	mode    gpuMode
	lost    bool
	energyJ float64
	lastT   time.Time // last good reading
	lastMJ  uint64    // energy counter at lastT
	lastW   float64   // power at lastT
	limitW  float64   // estimate: power at 100% utilisation
	fixedW  float64   // estimate without utilisation
	utilSum float64
	utilN   int
	memSum  float64
	memN    int
}

type nvmlMeasurement struct {
	m      *nvmlMeter
	gpus   []*gpuState
	model  string
	start  time.Time
	errs   int
	mu     sync.Mutex
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	result GPUReading
}

// Start implements EnergyMeter: it reads each GPU's counter (or first power
// sample) now and samples every SampleInterval until Stop.
func (m *nvmlMeter) Start(gpus []int, fallbackPowerW float64) Measurement {
	now := m.opt.Now()
	ms := &nvmlMeasurement{m: m, start: now, model: m.model, stop: make(chan struct{}), done: make(chan struct{})}
	for _, i := range gpus {
		g := &gpuState{index: i, lastT: now, fixedW: fallbackPowerW}
		ms.gpus = append(ms.gpus, g)
		dev, ret := m.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			ms.errs++
			g.mode, g.lost = modeEstimate, false
			continue
		}
		g.dev = dev
		if name, ret := dev.GetName(); ret == nvml.SUCCESS && name != "" {
			ms.model = name
		}
		if e, ret := dev.GetTotalEnergyConsumption(); ret == nvml.SUCCESS {
			g.mode, g.lastMJ = modeEnergy, e
		} else if p, ret := dev.GetPowerUsage(); ret == nvml.SUCCESS {
			g.mode, g.lastW = modePower, float64(p)/1000
		} else {
			g.mode = modeEstimate
			if l, ret := dev.GetEnforcedPowerLimit(); ret == nvml.SUCCESS && l > 0 {
				g.limitW = float64(l) / 1000
			} else if name, ret := dev.GetName(); ret == nvml.SUCCESS {
				g.limitW = modelTDP(name)
			}
		}
		ms.sampleUsage(g)
	}
	go ms.loop()
	return ms
}

func (ms *nvmlMeasurement) loop() {
	defer close(ms.done)
	t := time.NewTicker(ms.m.opt.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ms.stop:
			return
		case <-t.C:
			ms.sample(ms.m.opt.Now())
		}
	}
}

// Stop implements Measurement.
func (ms *nvmlMeasurement) Stop() GPUReading {
	ms.once.Do(func() {
		close(ms.stop)
		<-ms.done
		end := ms.m.opt.Now()
		ms.sample(end)
		ms.result = ms.reading(end)
	})
	return ms.result
}

// isLost reports whether ret means the device is gone for good.
func isLost(ret nvml.Return) bool {
	return ret == nvml.ERROR_GPU_IS_LOST || ret == nvml.ERROR_NOT_FOUND ||
		ret == nvml.ERROR_UNINITIALIZED || ret == nvml.ERROR_DRIVER_NOT_LOADED
}

func (ms *nvmlMeasurement) readFailed(g *gpuState, ret nvml.Return) {
	ms.errs++
	if isLost(ret) {
		g.lost = true
	}
}

// sample reads every GPU at t. A failed read leaves lastT where it was, so
// the next good read covers the gap.
func (ms *nvmlMeasurement) sample(t time.Time) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, g := range ms.gpus {
		if g.lost {
			continue
		}
		dt := t.Sub(g.lastT).Seconds()
		switch g.mode {
		case modeEnergy:
			e, ret := g.dev.GetTotalEnergyConsumption()
			if ret != nvml.SUCCESS {
				ms.readFailed(g, ret)
				continue
			}
			g.energyJ += counterDeltaJ(g.lastMJ, e, dt)
			g.lastMJ, g.lastT = e, t
		case modePower:
			p, ret := g.dev.GetPowerUsage()
			if ret != nvml.SUCCESS {
				ms.readFailed(g, ret)
				continue
			}
			w := float64(p) / 1000
			g.energyJ += (g.lastW + w) / 2 * dt
			g.lastW, g.lastT = w, t
		case modeEstimate:
			w := g.fixedW
			if g.limitW > 0 && g.utilN > 0 {
				w = g.limitW * (g.utilSum / float64(g.utilN)) / 100
			}
			g.energyJ += w * dt
			g.lastT = t
		}
		ms.sampleUsage(g)
	}
}

// counterDeltaJ returns the joules between two readings of the mJ
// counter dt seconds apart. A smaller reading is a wrap of the 64-bit
// counter when the step so implied is plausible, otherwise a reset (driver
// reload) from zero.
func counterDeltaJ(prev, cur uint64, dt float64) float64 {
	if cur >= prev {
		return float64(cur-prev) / 1000
	}
	wrapped := float64(math.MaxUint64-prev+cur+1) / 1000
	if dt > 0 && wrapped <= maxPlausibleW*dt {
		return wrapped
	}
	return float64(cur) / 1000
}

func (ms *nvmlMeasurement) sampleUsage(g *gpuState) {
	if g.dev == nil || g.lost {
		return
	}
	if u, ret := g.dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		g.utilSum += float64(u.Gpu)
		g.utilN++
	} else if ret != nvml.ERROR_NOT_SUPPORTED {
		ms.readFailed(g, ret)
	}
	if mem, ret := g.dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		g.memSum += float64(mem.Used) / (1 << 20)
		g.memN++
	} else if ret != nvml.ERROR_NOT_SUPPORTED {
		ms.readFailed(g, ret)
	}
}

// reading totals the GPUs. A GPU lost mid-run is extrapolated at its mean
// power so far (or the fallback power) and makes the source an estimate.
func (ms *nvmlMeasurement) reading(end time.Time) GPUReading {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	r := GPUReading{Model: ms.model, ReadErrors: ms.errs}
	var utilSum float64
	var utilN int
	for _, g := range ms.gpus {
		src := SourceEstimate
		switch g.mode {
		case modeEnergy:
			src = SourceNVML
		case modePower:
			src = SourceNVMLPowerSampling
		}
		if g.lost {
			src = SourceEstimate
			w := g.fixedW
			if el := g.lastT.Sub(ms.start).Seconds(); el > 0 && g.energyJ > 0 {
				w = g.energyJ / el
			}
			g.energyJ += w * end.Sub(g.lastT).Seconds()
		}
		r.Source = weaker(r.Source, src)
		r.KWh += g.energyJ / joulesPerKWh
		if g.utilN > 0 {
			utilSum += g.utilSum / float64(g.utilN)
			utilN++
			r.UtilizationSamples += g.utilN
		}
		if g.memN > 0 {
			r.MemoryUsedMiB += g.memSum / float64(g.memN)
		}
	}
	if utilN > 0 {
		r.UtilizationPct = utilSum / float64(utilN)
	}
	if r.Source == "" {
		r.Source = SourceEstimate
	}
	return r
}
