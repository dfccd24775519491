package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
)

// exitInterrupted is the exit status after Ctrl-C stops a wait, as a shell
// reports a command stopped by SIGINT (128 + 2): the job's outcome is not
// known, so it is neither 0 nor the job's failure.
const exitInterrupted = 130

// jobArgs resolves the jobs a command acts on: the IDs given, or with
// --group every job of that sweep. One of them is required.
func (g *globals) jobArgs(ctx context.Context, cmd *cobra.Command, args []string, group string) ([]string, error) {
	switch {
	case group != "" && len(args) > 0:
		return nil, usagef("give job IDs or --group, not both")
	case group == "" && len(args) == 0:
		return nil, usagef("%s: give one or more job IDs, or --group G", cmd.Name())
	case group == "":
		return args, nil
	}
	jobs, err := g.client().listAll(ctx, url.Values{"group": {group}})
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, greenq.Errorf(greenq.CodeNotFound, "group %s: no jobs (greenq submit --trials N prints a sweep's group)", group)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids, nil
}

// listAll follows GET /v1/jobs's pages for query q.
func (c *client) listAll(ctx context.Context, q url.Values) ([]*greenq.Job, error) {
	var all []*greenq.Job
	q.Set("limit", "1000")
	for {
		raw, err := c.raw(ctx, "GET", "/v1/jobs?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Jobs       []*greenq.Job `json:"jobs"`
			NextCursor string        `json:"next_cursor"`
		}
		if err := jsonUnmarshal(raw, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

func newStatus(g *globals) *cobra.Command {
	var (
		wait  bool
		group string
	)
	cmd := &cobra.Command{
		Use:   "status ID... | --group G",
		Short: "Show jobs; --wait follows them to the end",
		Long: `Show one job in detail, or several (or a sweep's, with --group) as a table.

With --wait, follow the jobs until they end, then show them. The exit
status then mirrors the jobs: 0 when every one succeeded; 1 when one
failed, was cancelled or expired (the message names it, with its exit
code). Ctrl-C stops following, leaves the jobs as they are and exits 130.`,
		Example: `  greenq status 01JD…
  greenq status 01JD… --wait
  greenq status --group 01JG… -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			ids, err := g.jobArgs(cmd.Context(), cmd, args, group)
			if err != nil {
				return err
			}
			if wait {
				return g.follow(cmd.Context(), ids)
			}
			c := g.client()
			var jobs []*greenq.Job
			var failed error
			for _, id := range ids {
				j, err := c.job(cmd.Context(), id)
				if err != nil && len(ids) == 1 {
					return err
				}
				if err != nil {
					fmt.Fprintln(g.stderr, "greenq:", err)
					failed = exitError{code: 1}
					continue
				}
				jobs = append(jobs, j)
			}
			if err := g.showJobs(jobs, len(ids) == 1 && group == ""); err != nil {
				return err
			}
			return failed
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the jobs with live progress until they end; the exit status mirrors them")
	cmd.Flags().StringVar(&group, "group", "", "every job of this sweep (greenq submit --trials prints it)")
	outputFlag(cmd, g)
	return cmd
}

// showJobs prints one job in detail (one), or jobs as a table.
func (g *globals) showJobs(jobs []*greenq.Job, one bool) error {
	if g.output == "json" {
		if one && len(jobs) == 1 {
			return writeJSON(g.stdout, jobs[0])
		}
		return writeJSON(g.stdout, nonNilJobs(jobs))
	}
	if one && len(jobs) == 1 {
		g.printJob(g.stdout, jobs[0])
		return nil
	}
	return g.jobTable(g.stdout, jobs, false)
}

func nonNilJobs(jobs []*greenq.Job) []*greenq.Job {
	if jobs == nil {
		return []*greenq.Job{}
	}
	return jobs
}

// follow polls jobs until every one reaches a final state, drawing a live
// progress line on a terminal (one line per change otherwise), then shows
// them. The result mirrors the jobs: nil when all succeeded, else exit 1
// naming what went wrong; Ctrl-C exits 130 and says what it left.
func (g *globals) follow(ctx context.Context, ids []string) error {
	c := g.client()
	tty := isTerminal(g.stdout) && g.output != "json"
	jobs := make([]*greenq.Job, len(ids))
	seen := map[string]greenq.State{}
	for {
		done, polled := true, 0
		for i, id := range ids {
			if jobs[i] != nil && jobs[i].State.Final() {
				continue
			}
			j, err := c.job(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return g.interrupted(tty, ids, jobs)
				}
				return err
			}
			jobs[i], polled = j, polled+1
			done = done && j.State.Final()
			if !tty && g.output != "json" && seen[id] != j.State && !j.State.Final() {
				// Not a terminal: one line per state change, no spinner noise.
				fmt.Fprintln(g.stdout, progressLine(j, g.now()))
			}
			seen[id] = j.State
		}
		if done {
			break
		}
		if tty {
			fmt.Fprint(g.stdout, "\r\033[K"+g.progressSummary(jobs))
		}
		// A poll a second, slower for many jobs: at most 10 requests a
		// second, half the API's default rate limit.
		if err := g.sleep(ctx, max(time.Second, time.Duration(polled)*100*time.Millisecond)); err != nil {
			return g.interrupted(tty, ids, jobs)
		}
	}
	if tty {
		fmt.Fprint(g.stdout, "\r\033[K")
	}
	if err := g.showJobs(jobs, len(jobs) == 1); err != nil {
		return err
	}
	return outcome(jobs)
}

// interrupted ends a wait stopped by Ctrl-C: exit 130, saying what the
// jobs are left doing.
func (g *globals) interrupted(tty bool, ids []string, jobs []*greenq.Job) error {
	if tty {
		fmt.Fprint(g.stdout, "\r\033[K")
	}
	if len(ids) == 1 {
		state := "as it is"
		if jobs[0] != nil {
			state = string(jobs[0].State)
		}
		return exitError{code: exitInterrupted, msg: fmt.Sprintf("stopped following %s (it is still %s; greenq status %s --wait follows it again)", ids[0], state, ids[0])}
	}
	return exitError{code: exitInterrupted, msg: fmt.Sprintf("stopped following %s; they go on as they were", plural(len(ids), "job"))}
}

// outcome is nil when every job succeeded, else exit 1 with what ended
// otherwise.
func outcome(jobs []*greenq.Job) error {
	var bad []string
	for _, j := range jobs {
		if j.State != greenq.StateSucceeded {
			bad = append(bad, jobEnding(j))
		}
	}
	switch {
	case len(bad) == 0:
		return nil
	case len(jobs) == 1:
		return exitError{code: 1, msg: bad[0]}
	default:
		return exitError{code: 1, msg: fmt.Sprintf("%d of %s did not succeed: %s", len(bad), plural(len(jobs), "job"), strings.Join(bad, "; "))}
	}
}

// jobEnding says how a job that did not succeed ended: "job X failed with
// exit code 3", "job X was cancelled".
func jobEnding(j *greenq.Job) string {
	s := fmt.Sprintf("job %s %s", j.ID, j.State)
	switch j.State {
	case greenq.StateFailed:
		if j.Run != nil && j.Run.ExitCode != nil {
			s += fmt.Sprintf(" with exit code %d", *j.Run.ExitCode)
		}
	case greenq.StateCancelled:
		s = fmt.Sprintf("job %s was cancelled", j.ID)
	}
	if j.Error != "" {
		s += ": " + j.Error
	}
	return s
}

// progressSummary is the live line of a wait: the one job's progress, or
// counts by state.
func (g *globals) progressSummary(jobs []*greenq.Job) string {
	if len(jobs) == 1 {
		return progressLine(jobs[0], g.now())
	}
	count := map[greenq.State]int{}
	for _, j := range jobs {
		count[j.State]++
	}
	var parts []string
	for _, st := range greenq.States {
		if n := count[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	return plural(len(jobs), "job") + ": " + strings.Join(parts, ", ")
}

func progressLine(j *greenq.Job, now time.Time) string {
	s := fmt.Sprintf("%s  %-8s", j.ID, j.State)
	switch {
	case j.State == greenq.StateRunning && j.Run != nil:
		s += fmt.Sprintf("  running in %s for %s", j.Run.Region, humanDuration(now.Sub(j.Run.StartedAt)))
		if d := j.Duration(); d > 0 {
			s += " of ~" + humanDuration(d)
		}
	case j.Plan != nil && j.Plan.Start.After(now):
		s += fmt.Sprintf("  starts in %s in %s (%s)", humanDuration(j.Plan.Start.Sub(now)), j.Plan.Region, j.Plan.Reason)
	case j.Plan != nil:
		s += fmt.Sprintf("  %s, window open", j.Plan.Region)
	default:
		s += "  waiting for a plan"
	}
	return s + "  deadline " + relative(j.Deadline, now)
}

func (g *globals) printJob(w io.Writer, j *greenq.Job) {
	now := g.now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("id", "%s", j.ID)
	if j.Name != "" {
		row("name", "%s", j.Name)
	}
	row("state", "%s", j.State)
	if j.Group != "" {
		row("group", "%s (trial %d)", j.Group, j.Trial)
	}
	row("command", "%s", shellQuote(j.Command))
	row("kind", "%s, %s", j.Kind, plural(j.GPUs, "GPU"))
	if j.DurationEstimateS > 0 {
		est := humanDuration(time.Duration(j.DurationEstimateS) * time.Second)
		if j.EstimateSource != "" {
			est += " (" + j.EstimateSource + ")"
		}
		row("duration", "about %s", est)
	}
	row("submitted", "%s (%s)", g.whenLong(j.SubmittedAt), relative(j.SubmittedAt, now))
	row("deadline", "%s (%s)", g.whenLong(j.Deadline), relative(j.Deadline, now))
	if len(j.Tags) > 0 {
		var tags []string
		for k, v := range j.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		row("tags", "%s", strings.Join(tags, " "))
	}
	if j.Attempts > 1 {
		row("attempts", "%d", j.Attempts)
	}
	if p := j.Plan; p != nil {
		row("plan", "%s from %s (%s), %s, %s", p.Region, g.whenLong(p.Start), relative(p.Start, now), grams(p.ExpectedGCO2), usd(p.ExpectedCostUSD))
		row("run now", "%s, %s", p.Baseline.Region, grams(p.Baseline.ExpectedGCO2))
		row("reason", "%s", p.Reason)
	}
	if r := j.Run; r != nil {
		s := fmt.Sprintf("%s on %s from %s", r.Region, r.Worker, g.whenLong(r.StartedAt))
		if r.FinishedAt != nil {
			s += fmt.Sprintf(" for %s", humanDuration(r.FinishedAt.Sub(r.StartedAt)))
		}
		if r.ExitCode != nil {
			s += fmt.Sprintf(", exit code %d", *r.ExitCode)
		}
		row("run", "%s", s)
	}
	if j.Error != "" {
		row("error", "%s", j.Error)
	}
	if r := j.Receipt; r != nil {
		row("energy", "%s (%s), PUE %s", energy(r.EnergyKWh), r.EnergySource, human(r.PUE))
		row("intensity", "%s gCO2e/kWh (%s signal, %s)", human(r.IntensityGCO2PerKWh), r.Signal, r.IntensitySource)
		row("emitted", "%s", grams(r.GCO2))
		row("saved", "%s against running at once (%s)", grams(r.SavedGCO2), grams(r.BaselineGCO2))
		if r.SavedByWaitingGCO2 != 0 || r.SavedByMovingGCO2 != 0 {
			row("split", "waiting saved %s, moving %s (home region %s)", grams(r.SavedByWaitingGCO2), grams(r.SavedByMovingGCO2), r.BaselineRegion)
		}
		if r.GPUHours > 0 {
			row("cost", "%s for %s GPU-hours run", usd(r.CostUSD), human(r.GPUHours))
		}
		if r.RestatedAt != nil && r.GCO2AtFinish != nil {
			row("restated", "from actuals %s (%s at finish)", g.whenLong(*r.RestatedAt), grams(*r.GCO2AtFinish))
		}
	}
	tw.Flush()
}

// jobTable prints jobs one a line; trials adds the sweep's trial numbers.
func (g *globals) jobTable(w io.Writer, jobs []*greenq.Job, trials bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "ID\tNAME\tSTATE\tREGION\tSTART\tDEADLINE\tgCO2e"
	if trials {
		head = "ID\tNAME\tTRIAL\tSTATE\tREGION\tSTART\tDEADLINE\tgCO2e"
	}
	fmt.Fprintln(tw, head)
	for _, j := range jobs {
		region, start, gco2 := "-", "-", "-"
		if j.Plan != nil {
			region, start = j.Plan.Region, g.when(j.Plan.Start)
			gco2 = human(j.Plan.ExpectedGCO2)
		}
		if j.Run != nil {
			region, start = j.Run.Region, g.when(j.Run.StartedAt)
		}
		if j.Receipt != nil {
			gco2 = human(j.Receipt.GCO2)
		}
		name := j.Name
		if trials {
			name += fmt.Sprintf("\t%d", j.Trial)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, name, j.State, region, start, g.when(j.Deadline), gco2)
	}
	return tw.Flush()
}

func newList(g *globals) *cobra.Command {
	var (
		state, region, group string
		tags                 []string
		limit                int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Example: `  greenq list --state planned
  greenq list --group 01JG…            # one sweep's trials
  greenq list --tag exp=lr-sweep --region uk-south -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if state != "" && !greenq.State(state).Valid() {
				return greenq.Invalid("state", "%q is not a job state (%s)", state, statesList())
			}
			if limit < 1 || limit > 1000 {
				return greenq.Invalid("limit", "must be between 1 and 1000, got %d", limit)
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "region": region, "group": group} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for _, t := range tags {
				if k, _, ok := strings.Cut(t, "="); !ok || k == "" {
					return greenq.Invalid("tag", "%q is not key=value", t)
				}
				q.Add("tag", t)
			}
			q.Set("limit", fmt.Sprint(limit))
			raw, err := g.client().raw(cmd.Context(), "GET", "/v1/jobs?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			jobs, err := decodeJobs(raw)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, jobs)
			}
			if group != "" {
				// A sweep reads best in trial order.
				sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].Trial < jobs[b].Trial })
			}
			return g.jobTable(g.stdout, jobs, group != "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only jobs in this state")
	f.StringVar(&group, "group", "", "only the jobs of this sweep (greenq submit --trials prints it)")
	f.StringArrayVar(&tags, "tag", nil, "only jobs with this key=value tag (repeatable: all must match)")
	f.StringVar(&region, "region", "", "only jobs planned or running in this region")
	f.IntVar(&limit, "limit", 100, "at most this many jobs (1–1000)")
	outputFlag(cmd, g)
	return cmd
}

func statesList() string {
	s := make([]string, len(greenq.States))
	for i, st := range greenq.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func newCancel(g *globals) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "cancel ID... | --group G",
		Short: "Cancel jobs in any non-final state",
		Long: `Cancel jobs: the IDs given, or with --group every job of a sweep that has
not ended yet. Each cancelled job is printed with its new state.`,
		Example: "  greenq cancel 01JD…\n  greenq cancel 01JD… 01JE…\n  greenq cancel --group 01JG…",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := g.client()
			if group != "" && len(args) == 0 {
				return g.cancelGroup(ctx, c, group)
			}
			ids, err := g.jobArgs(ctx, cmd, args, group)
			if err != nil {
				return err
			}
			failed := 0
			var last error
			for _, id := range ids {
				j, err := c.cancel(ctx, id)
				if err != nil {
					if len(ids) == 1 {
						return err
					}
					fmt.Fprintln(g.stderr, "greenq:", err)
					failed, last = failed+1, err
					continue
				}
				fmt.Fprintf(g.stdout, "%s %s\n", j.ID, j.State)
			}
			if failed > 0 {
				return exitError{code: exitCodeOf(last), msg: fmt.Sprintf("%d of %s not cancelled", failed, plural(len(ids), "job"))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "cancel every job of this sweep that has not ended")
	return cmd
}

func (c *client) cancel(ctx context.Context, id string) (*greenq.Job, error) {
	var j greenq.Job
	if err := c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// cancelGroup cancels the jobs of group that have not ended.
func (g *globals) cancelGroup(ctx context.Context, c *client, group string) error {
	jobs, err := c.listAll(ctx, url.Values{"group": {group}})
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		return greenq.Errorf(greenq.CodeNotFound, "group %s: no jobs (greenq submit --trials N prints a sweep's group)", group)
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].Trial < jobs[b].Trial })
	cancelled, ended := 0, 0
	var last error
	for _, j := range jobs {
		if j.State.Final() {
			ended++
			continue
		}
		got, err := c.cancel(ctx, j.ID)
		var ge *greenq.Error
		switch {
		case errors.As(err, &ge) && ge.Code == greenq.CodeConflict:
			ended++ // it ended meanwhile
		case err != nil:
			fmt.Fprintln(g.stderr, "greenq:", err)
			last = err
		default:
			cancelled++
			fmt.Fprintf(g.stdout, "%s %s\n", got.ID, got.State)
		}
	}
	summary := fmt.Sprintf("group %s: cancelled %d of %s", group, cancelled, plural(len(jobs), "job"))
	if ended > 0 {
		summary += fmt.Sprintf(" (%d had already ended)", ended)
	}
	if last != nil {
		return exitError{code: exitCodeOf(last), msg: summary}
	}
	fmt.Fprintln(g.stderr, summary)
	return nil
}

// exitCodeOf is the exit status err stands for.
func exitCodeOf(err error) int {
	var ge *greenq.Error
	if errors.As(err, &ge) {
		return greenq.ExitCode(ge.Code)
	}
	return 1
}
