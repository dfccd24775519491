package backtest

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// WorkingHours describes the working-hours workload shape: jobs submitted
// on workdays between 09:00 and 17:00 in their home region's time zone,
// each with one of four deadlines drawn uniformly — the next workday 09:00,
// +8 h, +24 h or +72 h after submit — and a run time drawn from Durations
// that fits it; a share interruptible; a per-GPU draw uniform in
// [MinPowerW, MaxPowerW].
type WorkingHours struct {
	// N is the number of jobs (required, ≥ 1).
	N int
	// From and To bound the days jobs are submitted on: every Monday to
	// Friday from From's date to the day before To's, dates in the home
	// region's time zone (required). Holidays are not skipped.
	From, To time.Time
	// Regions are the regions a job may run in. With one region every job
	// runs there; with more, each job may run in all of them, in a random
	// order whose first is its home region (where now runs it and whose
	// working hours it keeps). Empty: jobs name no region (all allowed) and
	// keep UTC working hours.
	Regions []string
	// Locations gives each region's time zone for its working hours.
	// Default UTC for a region not named.
	Locations map[string]*time.Location
	// Durations are the run times to draw from (required), e.g. a trace's
	// runtimes. A job's run time is redrawn until it fits its deadline.
	Durations []time.Duration
	// GPUs are the GPU counts to draw from. Default {1}.
	GPUs []int
	// InterruptibleShare is the share of jobs that may be paused. Default
	// 0.3; negative: none.
	InterruptibleShare float64
	// MinPowerW and MaxPowerW bound the per-GPU draw. Defaults 250 and 700.
	MinPowerW, MaxPowerW float64
	// Seed seeds the draw (PCG); the same configuration gives the same jobs.
	Seed uint64
}

// Deadline kinds of the working-hours shape, in the order they are drawn.
const (
	DeadlineNextWorkday = "next-workday-09"
	Deadline8h          = "+8h"
	Deadline24h         = "+24h"
	Deadline72h         = "+72h"
)

// WorkingHoursJobs draws cfg's workload, sorted by submit time, with ids
// wh-00001, wh-00002, …; every job can meet its deadline.
func WorkingHoursJobs(cfg WorkingHours) ([]Job, error) {
	switch {
	case cfg.N < 1:
		return nil, greenq.Invalid("jobs", "want at least 1 job, got %d", cfg.N)
	case !cfg.To.After(cfg.From):
		return nil, greenq.Invalid("to", "the period [%s, %s) is empty", cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339))
	case len(cfg.Durations) == 0:
		return nil, greenq.Invalid("durations", "at least one run time is required")
	}
	if len(cfg.GPUs) == 0 {
		cfg.GPUs = []int{1}
	}
	if cfg.InterruptibleShare == 0 {
		cfg.InterruptibleShare = 0.3
	}
	if cfg.MinPowerW <= 0 {
		cfg.MinPowerW = 250
	}
	if cfg.MaxPowerW <= 0 {
		cfg.MaxPowerW = 700
	}
	if cfg.MaxPowerW < cfg.MinPowerW {
		return nil, greenq.Invalid("max_power_w", "%v is below min_power_w %v", cfg.MaxPowerW, cfg.MinPowerW)
	}
	shortest := cfg.Durations[0]
	for _, d := range cfg.Durations {
		if d <= 0 {
			return nil, greenq.Invalid("durations", "run time %s is not > 0", d)
		}
		shortest = min(shortest, d)
	}
	if shortest > 8*time.Hour {
		return nil, greenq.Invalid("durations", "no run time fits the +8 h deadline (shortest %s)", shortest)
	}
	for _, g := range cfg.GPUs {
		if g < 1 {
			return nil, greenq.Invalid("gpus", "GPU count %d is not ≥ 1", g)
		}
	}
	homes := cfg.Regions
	if len(homes) == 0 {
		homes = []string{""}
	}
	days := map[string][]time.Time{}
	for _, h := range homes {
		loc := cfg.Locations[h]
		if loc == nil {
			loc = time.UTC
		}
		days[h] = workdays(cfg.From, cfg.To, loc)
		if len(days[h]) == 0 {
			return nil, greenq.Invalid("from", "no workday in [%s, %s)", cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339))
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 18))
	jobs := make([]Job, cfg.N)
	for i := range jobs {
		var regs []string
		home := ""
		if len(cfg.Regions) == 1 {
			regs, home = []string{cfg.Regions[0]}, cfg.Regions[0]
		} else if len(cfg.Regions) > 1 {
			for _, k := range rng.Perm(len(cfg.Regions)) {
				regs = append(regs, cfg.Regions[k])
			}
			home = regs[0]
		}
		ds := days[home]
		day := ds[rng.IntN(len(ds))]
		submit := day.Add(9*time.Hour + time.Duration(rng.Int64N(int64(8*time.Hour)))).Truncate(time.Second).UTC()
		kind := []string{DeadlineNextWorkday, Deadline8h, Deadline24h, Deadline72h}[rng.IntN(4)]
		deadline := WorkingHoursDeadline(kind, submit, day.Location())
		dur := cfg.Durations[rng.IntN(len(cfg.Durations))]
		for try := 0; submit.Add(dur).After(deadline); try++ {
			if try == 1000 {
				dur = shortest
				break
			}
			dur = cfg.Durations[rng.IntN(len(cfg.Durations))]
		}
		power := cfg.MinPowerW + rng.Float64()*(cfg.MaxPowerW-cfg.MinPowerW)
		jobs[i] = Job{Submit: submit, Duration: dur, GPUs: cfg.GPUs[rng.IntN(len(cfg.GPUs))], Deadline: deadline,
			Regions: regs, Interruptible: rng.Float64() < cfg.InterruptibleShare, PowerW: float64(int(power + 0.5))}
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].Submit.Before(jobs[b].Submit) })
	for i := range jobs {
		jobs[i].ID = fmt.Sprintf("wh-%05d", i+1)
	}
	return jobs, nil
}

// workdays lists the local midnights of the Mondays to Fridays from the
// date of from to the date before that of to, dates as in loc.
func workdays(from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	f, e := from.In(loc), to.In(loc)
	end := time.Date(e.Year(), e.Month(), e.Day(), 0, 0, 0, 0, loc)
	for d := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc); d.Before(end); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc) {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			out = append(out, d)
		}
	}
	return out
}

// WorkingHoursDeadline returns the deadline of kind for a job submitted at
// submit whose working hours are in loc: the next workday (Monday to
// Friday, in loc) 09:00, or submit plus 8, 24 or 72 hours.
func WorkingHoursDeadline(kind string, submit time.Time, loc *time.Location) time.Time {
	switch kind {
	case Deadline8h:
		return submit.Add(8 * time.Hour)
	case Deadline24h:
		return submit.Add(24 * time.Hour)
	case Deadline72h:
		return submit.Add(72 * time.Hour)
	}
	s := submit.In(loc)
	d := time.Date(s.Year(), s.Month(), s.Day()+1, 9, 0, 0, 0, loc)
	for d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
		d = time.Date(d.Year(), d.Month(), d.Day()+1, 9, 0, 0, 0, loc)
	}
	return d.UTC()
}

// WriteWorkload writes jobs in the format ReadWorkload reads:
// id,submit_utc,duration_s,gpus,deadline_utc,regions,interruptible,power_w.
func WriteWorkload(w io.Writer, jobs []Job) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string{}, workloadRequired...), workloadOptional...)); err != nil {
		return fmt.Errorf("write workload: %w", err)
	}
	for _, j := range jobs {
		rec := []string{j.ID, j.Submit.UTC().Format(time.RFC3339), strconv.FormatFloat(j.Duration.Seconds(), 'f', -1, 64), strconv.Itoa(j.GPUs),
			j.Deadline.UTC().Format(time.RFC3339), strings.Join(j.Regions, ";"), strconv.FormatBool(j.Interruptible), strconv.FormatFloat(j.PowerW, 'f', -1, 64)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write workload: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write workload: %w", err)
	}
	return nil
}
