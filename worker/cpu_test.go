package worker

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// copyTree copies dir (keeping symlinks) into a temp dir.
func copyTree(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	require.NoError(t, err)
	return dst
}

// fakePowercap lays out sys/class/powercap under root as Linux's powercap
// driver does: the control type directory, a package domain with core and
// dram sub-domains, a flat symlink to a sub-domain, and a psys domain that
// must not be counted.
func fakePowercap(t *testing.T, root string) {
	t.Helper()
	pc := filepath.Join(root, "sys/class/powercap")
	domains := []struct{ dir, name, uj, max string }{
		{"intel-rapl:0", "package-0", "262143000000", "262143328850"},
		{"intel-rapl:0/intel-rapl:0:0", "core", "5000000", "262143328850"},
		{"intel-rapl:0/intel-rapl:0:2", "dram", "7000000", "65712999613"},
		{"intel-rapl:1", "psys", "1000", "262143328850"},
	}
	require.NoError(t, os.MkdirAll(filepath.Join(pc, "intel-rapl"), 0o755))
	write(t, pc, "intel-rapl/enabled", "1")
	for _, d := range domains {
		require.NoError(t, os.MkdirAll(filepath.Join(pc, d.dir), 0o755))
		write(t, pc, d.dir+"/name", d.name)
		write(t, pc, d.dir+"/energy_uj", d.uj)
		write(t, pc, d.dir+"/max_energy_range_uj", d.max)
	}
	require.NoError(t, os.Symlink("intel-rapl:0/intel-rapl:0:2", filepath.Join(pc, "intel-rapl:0:2")))
}

func write(t *testing.T, root, rel, s string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, rel), []byte(s+"\n"), 0o644))
}

// fakeClock advances by step on every read.
func fakeClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func TestCPUMeterRAPL(t *testing.T) {
	t.Parallel()
	root := copyTree(t, "testdata/rapl")
	fakePowercap(t, root)
	const pc = "sys/class/powercap/"
	m := &CPUMeter{Root: root, CPUPowerW: 100, RAMPowerW: 10, NumCPU: 2, SampleInterval: time.Hour, Now: fakeClock(30 * time.Second)}
	require.True(t, m.Available())
	cm := m.Start()
	// The package counter wraps; core and psys move but are not counted
	// (core is inside the package, psys includes it).
	write(t, root, pc+"intel-rapl:0/energy_uj", "1000000")
	write(t, root, pc+"intel-rapl:0/intel-rapl:0:0/energy_uj", "900000000")
	write(t, root, pc+"intel-rapl:0/intel-rapl:0:2/energy_uj", "9000000")
	write(t, root, pc+"intel-rapl:1/energy_uj", "999999999")
	// The machine was busy for 100 s of CPU time (10000 ticks: user +8000,
	// system +1990, steal +10; idle and iowait do not count).
	stat, err := os.ReadFile(filepath.Join(root, "proc/stat"))
	require.NoError(t, err)
	write(t, root, "proc/stat", strings.Replace(string(stat),
		"cpu  65947 343 19724 110684 378 0 169 33 0 0", "cpu  73947 343 21714 999999 9999 0 169 43 0 0", 1))

	r := cm.Stop(25 * time.Second) // the job: a quarter of it
	require.Equal(t, SourceRAPL, r.Source)
	pkgJ := float64(262143328850-262143000000+1000000) / 1e6
	require.InDelta(t, pkgJ*0.25/joulesPerKWh, r.CPUKWh, 1e-15)
	require.InDelta(t, 2.0*0.25/joulesPerKWh, r.RAMKWh, 1e-15)
}

func TestCPUMeterEstimate(t *testing.T) {
	t.Parallel()
	m := &CPUMeter{Root: t.TempDir(), CPUPowerW: 100, RAMPowerW: 10, NumCPU: 4, Now: fakeClock(60 * time.Second)}
	require.False(t, m.Available())
	r := m.Start().Stop(25 * time.Second)
	require.Equal(t, SourceEstimate, r.Source)
	require.InDelta(t, 100*25/4/joulesPerKWh, r.CPUKWh, 1e-15)
	require.InDelta(t, 10*60/joulesPerKWh, r.RAMKWh, 1e-15)
}

func TestOpenGPUMeterFallsBack(t *testing.T) {
	t.Parallel()
	m, err := OpenGPUMeter(MeterOptions{})
	require.NotNil(t, m)
	if err != nil { // no driver (or no cgo) here: estimate
		require.IsType(t, &EstimateMeter{}, m)
		r := m.Start([]int{0, 1}, 300).Stop()
		require.Equal(t, SourceEstimate, r.Source)
	}
	require.NoError(t, m.Close())
}

func TestEstimateMeter(t *testing.T) {
	t.Parallel()
	m := &EstimateMeter{Now: fakeClock(time.Hour), GPUModel: "X"}
	r := m.Start([]int{0, 1}, 300).Stop()
	require.InDelta(t, 0.6, r.KWh, 1e-12) // 2 GPUs × 300 W × 1 h
	require.Equal(t, SourceEstimate, r.Source)
	require.Equal(t, "X", r.Model)
}
