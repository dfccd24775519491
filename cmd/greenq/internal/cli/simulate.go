package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/policy/backtest"
)

func newSimulate(g *globals) *cobra.Command {
	var (
		cfg                 backtest.Config
		capacity, pue, slot string
		progress            bool
	)
	cmd := &cobra.Command{
		Use:   "simulate --carbon DIR --workload FILE",
		Short: "Back-test greenq on real carbon history and a workload",
		Long: `Replay a workload against real carbon history through the production
planner and forecaster, and compare greenq with running at once ("now"),
with a simple causal reference heuristic ("reference": a 7-day hourly
profile plus the current deviation fading over 12 h, re-decided every hour)
and with a perfect-information oracle. The planner sees only what was known
at each decision: history up to then and forecast vintages issued by then.

--carbon DIR       one <region>.csv per region: time_utc,gco2_per_kwh (any step)
--workload FILE    id,submit_utc,duration_s,gpus,deadline_utc[,regions][,interruptible][,power_w]
--forecasts DIR    optional real vintages: <region>.csv with issued_utc,target_utc,gco2_per_kwh`,
		Example: `  greenq simulate --carbon data/carbon --workload jobs.csv
  greenq simulate --carbon data/carbon --workload jobs.csv --capacity eu-north=8,us-west=4 -o json
  greenq simulate --carbon data/carbon --workload jobs.csv --placements placements.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if cfg.CarbonDir == "" {
				return greenq.Invalid("carbon", "is required: a directory of <region>.csv files")
			}
			if cfg.WorkloadFile == "" {
				return greenq.Invalid("workload", "is required: a CSV of jobs")
			}
			for _, in := range []struct{ flag, path string }{{"carbon", cfg.CarbonDir}, {"workload", cfg.WorkloadFile}, {"forecasts", cfg.ForecastsDir}} {
				flag, path := in.flag, in.path
				if path == "" {
					continue
				}
				if _, err := os.Stat(path); err != nil {
					return greenq.Invalid(flag, "cannot read %s: %v", path, errors.Unwrap(err))
				}
			}
			var err error
			if capacity != "" {
				if cfg.Capacity, err = backtest.ParseCapacity(capacity); err != nil {
					return err
				}
			}
			if pue != "" {
				if cfg.PUE, err = backtest.ParsePUE(pue); err != nil {
					return err
				}
			}
			if slot != "" {
				d, err := time.ParseDuration(slot)
				if err != nil || d < time.Second {
					return greenq.Invalid("slot", "%q is not a Go duration of at least 1s", slot)
				}
				cfg.Planner.Slot = d
			}
			if cfg.ForecastNoise < 0 || cfg.ForecastNoise > 1 {
				return greenq.Invalid("forecast-noise", "must be between 0 and 1")
			}
			var report func(done, total int)
			if progress && isTerminal(g.stderr) {
				report = progressBar(g)
			}
			res, err := backtest.Run(cmd.Context(), cfg, report)
			if report != nil {
				fmt.Fprint(g.stderr, "\r\033[K")
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, res)
			}
			return res.WriteTable(g.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.CarbonDir, "carbon", "", "directory of <region>.csv actual intensity series (required)")
	f.StringVar(&cfg.WorkloadFile, "workload", "", "workload CSV (required)")
	f.StringVar(&cfg.ForecastsDir, "forecasts", "", "directory of <region>.csv forecast vintages")
	f.StringVar(&capacity, "capacity", "", "GPUs per region, R=N,… (default unbounded)")
	f.StringVar(&pue, "pue", "", "PUE per region, R=x,… (default 1)")
	f.Float64Var(&cfg.ForecastNoise, "forecast-noise", 0, "plan on the actual series plus Gaussian noise of σ = F × its mean (for comparison with published studies only)")
	f.StringVar(&cfg.PlacementsFile, "placements", "", "write the greenq policy's run segments here: id,region,start_utc,end_utc")
	f.StringVar(&slot, "slot", "", "planning slot (default 15m)")
	f.DurationVar(&cfg.Tick, "replan", 0, "re-plan interval on the virtual clock (default 1h)")
	f.BoolVar(&progress, "progress", true, "draw a progress bar on a terminal")
	outputFlag(cmd, g)
	return cmd
}

// progressBar returns a callback drawing a one-line bar on stderr.
func progressBar(g *globals) func(done, total int) {
	start := time.Now()
	last := time.Time{}
	return func(done, total int) {
		if total <= 0 || (time.Since(last) < 100*time.Millisecond && done < total) {
			return
		}
		last = time.Now()
		const width = 30
		n := done * width / total
		fmt.Fprintf(g.stderr, "\r[%s%s] %d/%d jobs  %s", strings.Repeat("█", n), strings.Repeat("·", width-n), done, total, time.Since(start).Round(time.Second))
	}
}
