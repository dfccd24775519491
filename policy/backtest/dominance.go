package backtest

import (
	"math"

	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
)

// checkDominance compares, in a round without capacity limits or a carbon
// price, every interruptible job's assignment with the plan the same job
// gets in one piece (jobs are then planned independently, so the flipped
// jobs are planned together in one more call) and records in st the jobs
// planned worse in expected gCO2e. A kept plan may lag the best by the
// hysteresis (see policy.Config.Hysteresis), so that much is allowed for
// it. The one-piece plans go through the planning adapter as every other
// plan does.
func (s *sim) checkDominance(in policy.Input, res policy.Result, st *greenStats) {
	cfg := in.Config.WithDefaults()
	if cfg.CarbonPriceUSDPerTonne > 0 {
		return
	}
	for _, r := range in.Regions {
		if r.Capacity > 0 || len(r.Workers) > 0 {
			return
		}
	}
	var idx []int
	one := in
	one.Jobs = nil
	for i, j := range in.Jobs {
		if a := res.Assignments[i]; !j.Interruptible || a.Held || a.Region == "" {
			continue
		}
		j.Interruptible = false
		if j.Current != nil && len(j.Current.Segments) > 1 {
			j.Current = nil
		}
		idx = append(idx, i)
		one.Jobs = append(one.Jobs, j)
	}
	if len(idx) == 0 {
		return
	}
	for n, b := range planning.New(s.cfg.Planner).PlanInput(one).Assignments {
		a := res.Assignments[idx[n]]
		if b.Held || b.Region == "" {
			continue
		}
		tol := 1e-9
		if a.Kept {
			tol = cfg.Hysteresis
		}
		if a.ExpectedGCO2 > b.ExpectedGCO2+tol*math.Abs(b.ExpectedGCO2)+1e-9 {
			if st.violators == nil {
				st.violators = map[string]bool{}
			}
			st.violators[a.JobID] = true
		}
	}
}
