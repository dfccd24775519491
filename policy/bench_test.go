package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/policy"
)

// benchInput is the speed target's shape: n pending jobs, 10 regions, a
// 48h horizon at 15-minute slots; with capacity, each region has a pool
// sized so that together they hold 1.5× the GPU-hours asked for.
func benchInput(tb testing.TB, n int, capacity bool) policy.Input {
	now := t0.Add(12 * time.Hour)
	regs := fixtureRegions(tb, 10)
	jobs := workload(n, now, regs, 48*time.Hour, 7)
	if capacity {
		var gpuH float64
		for _, j := range jobs {
			gpuH += float64(j.GPUs) * j.Duration.Hours()
		}
		per := int(1.5 * gpuH / 48 / float64(len(regs)))
		for i := range regs {
			regs[i].Capacity = max(per, 8)
		}
	}
	return policy.Input{Now: now, Jobs: jobs, Regions: regs}
}

func benchPlan(b *testing.B, n int, capacity bool) {
	in := benchInput(b, n, capacity)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		policy.Plan(in)
	}
}

func BenchmarkPlan10k(b *testing.B)          { benchPlan(b, 10_000, false) }
func BenchmarkPlan100k(b *testing.B)         { benchPlan(b, 100_000, false) }
func BenchmarkPlan1M(b *testing.B)           { benchPlan(b, 1_000_000, false) }
func BenchmarkPlan10kCapacity(b *testing.B)  { benchPlan(b, 10_000, true) }
func BenchmarkPlan100kCapacity(b *testing.B) { benchPlan(b, 100_000, true) }

// TestBenchTablePlanner writes the planner's scaling table (wall time and
// memory allocated per Plan call at 10k, 100k and 1M jobs, with and without
// capacity limits) to stdout and, when GREENQ_BENCH_OUT is set, to
// $GREENQ_BENCH_OUT/planner.md. It runs only with GREENQ_BENCH=1: it takes
// tens of seconds and its figures depend on the machine.
func TestBenchTablePlanner(t *testing.T) {
	if os.Getenv("GREENQ_BENCH") != "1" {
		t.Skip("set GREENQ_BENCH=1 to measure the planner")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Planner scaling\n\n")
	fmt.Fprintf(&b, "`policy.Plan`, one round: 10 regions, 48 h horizon, 15-min slots; jobs of 15 min–6 h, deadlines within 48 h, 1–4 GPUs, a fifth interruptible, a third restricted to 3 regions (see `benchInput` in policy/bench_test.go). With capacity, the pools together hold 1.5× the GPU-hours asked for over the 48 h. %s, GOMAXPROCS=%d; best of 3 runs below 1M jobs.\n\n", runtime.GOARCH, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "| jobs | capacity | wall time | allocated | per job |\n|---:|---|---:|---:|---:|\n")
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, capacity := range []bool{false, true} {
			in := benchInput(t, n, capacity)
			runs := 3
			if n >= 1_000_000 {
				runs = 1
			}
			var best time.Duration
			var alloc uint64
			for r := 0; r < runs; r++ {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				st := time.Now()
				res := policy.Plan(in)
				d := time.Since(st)
				runtime.ReadMemStats(&m1)
				require.Len(t, res.Assignments, n)
				if r == 0 || d < best {
					best = d
				}
				alloc = m1.TotalAlloc - m0.TotalAlloc
			}
			lim := "none"
			if capacity {
				lim = "bounded"
			}
			fmt.Fprintf(&b, "| %d | %s | %.3f s | %.0f MiB | %.2f µs |\n", n, lim, best.Seconds(), float64(alloc)/(1<<20), float64(best.Microseconds())/float64(n))
		}
	}
	fmt.Print(b.String())
	if dir := os.Getenv("GREENQ_BENCH_OUT"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "planner.md"), []byte(b.String()), 0o644))
	}
}
