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
func BenchmarkPlan1MCapacity(b *testing.B)   { benchPlan(b, 1_000_000, true) }

// BenchmarkTablePlanner writes the planner's scaling table (10k, 100k and
// 1M jobs, with and without capacity limits: wall time, time and bytes
// allocated per job, the result's live heap per job, and time per job as a
// ratio to the 10k row of the same kind) to stdout and, when
// GREENQ_BENCH_OUT is set, to $GREENQ_BENCH_OUT/planner.md. It measures its
// own rounds and ignores b.N: run it with -benchtime 1x (make bench); it
// takes about a minute and its figures depend on the machine.
func BenchmarkTablePlanner(b *testing.B) {
	var md strings.Builder
	fmt.Fprintf(&md, "## Planner scaling\n\n")
	fmt.Fprintf(&md, "`policy.Plan`, one round: 10 regions, 48 h horizon, 15-min slots; jobs of 15 min–6 h, deadlines within 48 h, 1–4 GPUs, a fifth interruptible, a third restricted to 3 regions (see `benchInput` in policy/bench_test.go). With capacity, the pools together hold 1.5× the GPU-hours asked for over the 48 h. %s, GOMAXPROCS=%d; best of 3 runs below 1M jobs. *Allocated* is everything a round allocates, *live* what its result keeps; *vs 10k* is time per job against the 10k row of the same kind.\n\n", runtime.GOARCH, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&md, "| jobs | capacity | wall time | per job | vs 10k | allocated per job | live per job | urgent |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
	type row struct {
		n        int
		capacity bool
		wall     time.Duration
		alloc    uint64
		live     int64
		urgent   int
	}
	var rows []row
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, capacity := range []bool{false, true} {
			in := benchInput(b, n, capacity)
			runs := 3
			if n >= 1_000_000 {
				runs = 1
			}
			r := row{n: n, capacity: capacity}
			for k := 0; k < runs; k++ {
				runtime.GC()
				var m0, m1, m2 runtime.MemStats
				runtime.ReadMemStats(&m0)
				st := time.Now()
				res := policy.Plan(in)
				d := time.Since(st)
				runtime.ReadMemStats(&m1)
				runtime.GC()
				runtime.ReadMemStats(&m2)
				require.Len(b, res.Assignments, n)
				if k == 0 || d < r.wall {
					r.wall = d
				}
				r.alloc = m1.TotalAlloc - m0.TotalAlloc
				r.live = int64(m2.HeapAlloc) - int64(m0.HeapAlloc)
				r.urgent = 0
				for _, a := range res.Assignments {
					if a.Urgent {
						r.urgent++
					}
				}
				runtime.KeepAlive(res)
			}
			rows = append(rows, r)
		}
	}
	for _, r := range rows {
		lim := "none"
		if r.capacity {
			lim = "bounded"
		}
		perJob := float64(r.wall.Nanoseconds()) / float64(r.n)
		base := perJob
		for _, q := range rows {
			if q.n == 10_000 && q.capacity == r.capacity {
				base = float64(q.wall.Nanoseconds()) / float64(q.n)
			}
		}
		fmt.Fprintf(&md, "| %d | %s | %.3f s | %.0f ns | %.2f× | %.0f B | %.0f B | %d |\n", r.n, lim, r.wall.Seconds(), perJob, perJob/base, float64(r.alloc)/float64(r.n), float64(r.live)/float64(r.n), r.urgent)
	}
	fmt.Print(md.String())
	if dir := os.Getenv("GREENQ_BENCH_OUT"); dir != "" {
		require.NoError(b, os.MkdirAll(dir, 0o755))
		require.NoError(b, os.WriteFile(filepath.Join(dir, "planner.md"), []byte(md.String()), 0o644))
	}
}
