package worker

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
)

// CPUMeter measures the CPU package and DRAM energy of a job: RAPL
// counters under Root/sys/class/powercap where the machine exposes them
// and they are readable, shared out by the job's CPU time against the
// machine's busy CPU time (Root/proc/stat); otherwise the configured
// estimate.
type CPUMeter struct {
	// Root is the file-system root holding sys/ and proc/. Default "/".
	Root string
	// CPUPowerW is the whole CPU's draw at full load, for the estimate: a
	// job is charged CPUPowerW × its CPU seconds / NumCPU.
	CPUPowerW float64
	// RAMPowerW is the draw charged to a job for its memory over its wall
	// time, for the estimate.
	RAMPowerW float64
	// NumCPU is the number of logical CPUs. Default runtime.NumCPU().
	NumCPU int
	// SampleInterval is how often RAPL counters are read, so wraps between
	// reads are never missed. Default 1s.
	SampleInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// CPUReading is what a CPU measurement found.
type CPUReading struct {
	CPUKWh float64
	RAMKWh float64
	// Source is SourceRAPL or SourceEstimate (for CPU; RAM too when RAPL
	// has a dram domain).
	Source greenq.EnergySource
}

type raplDomain struct {
	path     string
	ram      bool
	maxUJ    uint64
	lastUJ   uint64
	energyUJ float64
}

// CPUMeasurement is one CPU metering in progress.
type CPUMeasurement struct {
	m         *CPUMeter
	start     time.Time
	domains   []*raplDomain
	busyStart float64
	rapl      bool
	mu        sync.Mutex
	stop      chan struct{}
	done      chan struct{}
}

func (m *CPUMeter) defaults() (root string, ncpu int, now func() time.Time, every time.Duration) {
	root, ncpu, now, every = m.Root, m.NumCPU, m.Now, m.SampleInterval
	if root == "" {
		root = "/"
	}
	if ncpu <= 0 {
		ncpu = runtime.NumCPU()
	}
	if now == nil {
		now = time.Now
	}
	if every <= 0 {
		every = time.Second
	}
	return
}

// Available reports whether RAPL package counters can be read.
func (m *CPUMeter) Available() bool {
	root, _, _, _ := m.defaults()
	ds, err := readRAPLDomains(root)
	return err == nil && len(ds) > 0
}

// Start begins metering.
func (m *CPUMeter) Start() *CPUMeasurement {
	root, _, now, every := m.defaults()
	cm := &CPUMeasurement{m: m, start: now(), stop: make(chan struct{}), done: make(chan struct{})}
	ds, err := readRAPLDomains(root)
	busy, berr := readBusySeconds(root)
	if err == nil && berr == nil && len(ds) > 0 {
		cm.domains, cm.busyStart, cm.rapl = ds, busy, true
		go cm.loop(every)
	} else {
		close(cm.done)
	}
	return cm
}

func (cm *CPUMeasurement) loop(every time.Duration) {
	defer close(cm.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-cm.stop:
			return
		case <-t.C:
			cm.sample()
		}
	}
}

func (cm *CPUMeasurement) sample() {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	for _, d := range cm.domains {
		uj, err := readUint(filepath.Join(d.path, "energy_uj"))
		if err != nil {
			continue // the next good read covers the gap
		}
		if uj >= d.lastUJ {
			d.energyUJ += float64(uj - d.lastUJ)
		} else {
			// The counter wrapped at max_energy_range_uj.
			d.energyUJ += float64(d.maxUJ - d.lastUJ + uj)
		}
		d.lastUJ = uj
	}
}

// Stop ends the metering. jobCPU is the CPU time (user + system) of the
// job's processes over the run.
func (cm *CPUMeasurement) Stop(jobCPU time.Duration) CPUReading {
	root, ncpu, now, _ := cm.m.defaults()
	wall := now().Sub(cm.start).Seconds()
	if cm.rapl {
		close(cm.stop)
		<-cm.done
		cm.sample()
		busy, err := readBusySeconds(root)
		if err == nil {
			share := 0.0
			if d := busy - cm.busyStart; d > 0 {
				share = min(1, jobCPU.Seconds()/d)
			}
			var r CPUReading
			r.Source = SourceRAPL
			ramMeasured := false
			for _, d := range cm.domains {
				kwh := d.energyUJ / 1e6 / joulesPerKWh * share
				if d.ram {
					r.RAMKWh += kwh
					ramMeasured = true
				} else {
					r.CPUKWh += kwh
				}
			}
			if !ramMeasured {
				r.RAMKWh = cm.m.RAMPowerW * wall / joulesPerKWh
			}
			return r
		}
	}
	return CPUReading{
		CPUKWh: cm.m.CPUPowerW * jobCPU.Seconds() / float64(ncpu) / joulesPerKWh,
		RAMKWh: cm.m.RAMPowerW * wall / joulesPerKWh,
		Source: SourceEstimate,
	}
}

// readRAPLDomains finds the package and dram domains (psys is skipped: it
// already includes the packages) and reads their counters.
func readRAPLDomains(root string) ([]*raplDomain, error) {
	dirs, err := filepath.Glob(filepath.Join(root, "sys/class/powercap/intel-rapl*"))
	if err != nil {
		return nil, fmt.Errorf("list rapl domains: %w", err)
	}
	var subs []string
	for _, d := range dirs {
		more, _ := filepath.Glob(filepath.Join(d, "intel-rapl*"))
		subs = append(subs, more...)
	}
	seen := map[string]bool{}
	var out []*raplDomain
	for _, d := range append(dirs, subs...) {
		nameB, err := os.ReadFile(filepath.Join(d, "name"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(nameB))
		ram := name == "dram"
		if !ram && !strings.HasPrefix(name, "package-") {
			continue
		}
		// sys/class/powercap lists sub-domains both nested and flat.
		resolved, err := filepath.EvalSymlinks(d)
		if err != nil {
			resolved = d
		}
		if seen[resolved] {
			continue
		}
		seen[resolved] = true
		uj, err := readUint(filepath.Join(d, "energy_uj"))
		if err != nil {
			return nil, fmt.Errorf("read rapl %s: %w", name, err)
		}
		maxUJ, err := readUint(filepath.Join(d, "max_energy_range_uj"))
		if err != nil {
			return nil, fmt.Errorf("read rapl %s range: %w", name, err)
		}
		out = append(out, &raplDomain{path: d, ram: ram, maxUJ: maxUJ, lastUJ: uj})
	}
	return out, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// clockTicks is USER_HZ, the unit of /proc/stat; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// readBusySeconds returns the machine's non-idle CPU time from proc/stat.
func readBusySeconds(root string) (float64, error) {
	f, err := os.Open(filepath.Join(root, "proc/stat"))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 9 || fields[0] != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal
		var busy float64
		for i, f := range fields[1:9:9] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return 0, fmt.Errorf("parse cpu time %q: %w", f, err)
			}
			busy += v
		}
		return busy / clockTicks, nil
	}
	return 0, fmt.Errorf("read cpu time: no cpu line in proc/stat")
}
