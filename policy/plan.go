package policy

import (
	"fmt"
	"time"
)

// Plan decides a region and window for every job in in.Jobs. It is a pure
// function of its input.
//
// This first version considers, for each job independently, every allowed
// region and every slot-aligned start that finishes by the deadline, and
// takes the one with the least expected emissions (cost breaks ties). It does
// not yet enforce capacity or split interruptible jobs.
func Plan(in Input) Result {
	cfg := in.Config.WithDefaults()
	out := Result{Assignments: make([]Assignment, 0, len(in.Jobs))}
	for _, j := range in.Jobs {
		out.Assignments = append(out.Assignments, planOne(in, cfg, j))
	}
	return out
}

func planOne(in Input, cfg Config, j Job) Assignment {
	earliest := in.Now
	if j.Earliest.After(earliest) {
		earliest = j.Earliest
	}
	regions := allowed(in.Regions, j)
	a := Assignment{JobID: j.ID}
	if len(regions) == 0 {
		a.Urgent = true
		a.Reason = "no allowed region is configured"
		return a
	}
	base := estimate(cfg, j, regions[0], earliest)
	a.Baseline = Baseline{Region: base.Region, Start: earliest, ExpectedGCO2: base.ExpectedGCO2, ExpectedCostUSD: base.ExpectedCostUSD}

	latest := j.Deadline.Add(-j.Duration - margin(cfg, j, earliest))
	if latest.Before(earliest) {
		a.Region, a.Segments = base.Region, []Window{{earliest, earliest.Add(j.Duration)}}
		a.ExpectedKWh, a.ExpectedGCO2, a.ExpectedCostUSD = energyKWh(cfg, j, regions[0]), base.ExpectedGCO2, base.ExpectedCostUSD
		a.Urgent = true
		a.Reason = "cannot wait: the deadline leaves no room, released at once"
		return a
	}
	best := base
	for _, r := range regions {
		for s := earliest; !s.After(latest); s = nextSlot(s, cfg.Slot) {
			c := estimate(cfg, j, r, s)
			if c.ExpectedGCO2 < best.ExpectedGCO2 || (c.ExpectedGCO2 == best.ExpectedGCO2 && c.ExpectedCostUSD < best.ExpectedCostUSD) {
				best = c
			}
		}
	}
	a.Region = best.Region
	a.Segments = []Window{{best.Start, best.Start.Add(j.Duration)}}
	a.ExpectedKWh = energyKWh(cfg, j, regionByName(regions, best.Region))
	a.ExpectedGCO2, a.ExpectedCostUSD = best.ExpectedGCO2, best.ExpectedCostUSD
	a.Reason = reason(a, earliest)
	return a
}

func reason(a Assignment, earliest time.Time) string {
	saved := a.Baseline.ExpectedGCO2 - a.ExpectedGCO2
	if saved <= 0 || a.Baseline.ExpectedGCO2 == 0 {
		return fmt.Sprintf("run now in %s: no allowed region or window is cleaner", a.Region)
	}
	pct := 100 * saved / a.Baseline.ExpectedGCO2
	wait := a.Start().Sub(earliest).Round(time.Minute)
	if wait <= 0 {
		return fmt.Sprintf("run now in %s instead of %s to save %.0f%%", a.Region, a.Baseline.Region, pct)
	}
	return fmt.Sprintf("defer %s to %s to save %.0f%%", wait, a.Region, pct)
}

func nextSlot(t time.Time, slot time.Duration) time.Time {
	n := t.Truncate(slot).Add(slot)
	return n
}

func margin(cfg Config, j Job, earliest time.Time) time.Duration {
	if cfg.SafetyMargin > 0 {
		return cfg.SafetyMargin
	}
	m := 2 * cfg.Slot
	if p := j.Duration / 10; p > m {
		m = p
	}
	if slack := j.Deadline.Sub(earliest) - j.Duration; m > slack/2 {
		m = slack / 2
	}
	if m < 0 {
		m = 0
	}
	return m
}

func allowed(regions []Region, j Job) []Region {
	var out []Region
	if len(j.Regions) == 0 {
		out = append(out, regions...)
	} else {
		for _, name := range j.Regions {
			for _, r := range regions {
				if r.Name == name {
					out = append(out, r)
				}
			}
		}
	}
	if j.MaxPriceUSDPerGPUHour > 0 {
		kept := out[:0:0]
		for _, r := range out {
			if r.Price.USDPerGPUHour <= j.MaxPriceUSDPerGPUHour {
				kept = append(kept, r)
			}
		}
		out = kept
	}
	return out
}

func regionByName(rs []Region, name string) Region {
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	return Region{}
}

func energyKWh(cfg Config, j Job, r Region) float64 {
	p := j.PowerW
	if p <= 0 {
		p = cfg.DefaultPowerW
	}
	pue := r.PUE
	if pue <= 0 {
		pue = 1
	}
	return float64(j.GPUs) * p / 1000 * j.Duration.Hours() * pue
}

type candidate struct {
	Region          string
	Start           time.Time
	ExpectedGCO2    float64
	ExpectedCostUSD float64
}

func estimate(cfg Config, j Job, r Region, start time.Time) candidate {
	end := start.Add(j.Duration)
	mean, _ := r.Series.Mean(start, end)
	return candidate{
		Region:          r.Name,
		Start:           start,
		ExpectedGCO2:    energyKWh(cfg, j, r) * mean,
		ExpectedCostUSD: float64(j.GPUs) * r.Price.At(start) * j.Duration.Hours(),
	}
}
