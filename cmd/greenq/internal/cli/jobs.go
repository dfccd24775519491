package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api"
	"github.com/greenq/greenq/queue"
)

func newSubmit(g *globals) *cobra.Command {
	var (
		req      greenq.SubmitRequest
		kind     string
		duration time.Duration
		tags     []string
		wait     bool
		spec     specFlags
	)
	cmd := &cobra.Command{
		Use:   "submit --deadline D [flags] -- CMD [ARGS...]",
		Short: "Submit a job; prints its id",
		Long: `Submit a job to run in the lowest-carbon region and window that meets its
deadline. D is a Go duration from now (24h) or an RFC 3339 time. The command
runs as an argv, without a shell, unless you write one (sh -c '…').

The job carries its environment: --env and --env-file set variables,
--secret K=NAME names a secret the worker resolves from its own store (the
value never leaves the worker), --workdir says where it starts (a path on
the region's shared storage; default a fresh empty directory), --image runs
it in an OCI image. Stopping it (deadline, cancel, a pause, a drain) is
SIGTERM, --grace, then SIGKILL; --signal USR1@5m warns it before the
deadline, as Slurm's --signal does.`,
		Example: `  greenq submit --deadline 24h --duration 3h --gpus 1 -- python train.py
  greenq submit --deadline 24h --workdir /shared/me/proj --env-file .env --secret WANDB_API_KEY=wandb -- python3 train.py
  greenq submit --deadline 8h --image registry.example.org/me/train:1.2 --env LR=0.01 -- python3 /app/train.py
  greenq submit --deadline 2026-12-01T09:00:00Z --kind sweep --trials 8 -- python sweep.py
  greenq submit --deadline 3m --duration 20s --wait -- sh -c 'echo hi'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			req.Command = args
			req.Kind = greenq.Kind(kind)
			// An explicit 0 is refused here; over HTTP an omitted field means the default.
			if req.GPUs < 1 {
				return greenq.Invalid("gpus", "must be at least 1, got %d", req.GPUs)
			}
			if req.Trials < 1 {
				return greenq.Invalid("trials", "must be at least 1, got %d", req.Trials)
			}
			if duration < 0 {
				return greenq.Invalid("duration", "must not be negative")
			}
			req.DurationEstimateS = int64(duration / time.Second)
			if duration > 0 && req.DurationEstimateS == 0 {
				req.DurationEstimateS = 1
			}
			var err error
			if req.Tags, err = parseTags(tags); err != nil {
				return err
			}
			if req.JobSpec, err = spec.jobSpec(); err != nil {
				return err
			}
			// Check locally first so bad input never reaches the server; the
			// server checks regions against its configuration.
			local := req
			if _, err := local.Normalize(time.Now(), req.Regions); err != nil {
				return asFlagError(err)
			}
			if d := strings.TrimSpace(req.Deadline); d != "" {
				if dd, err := time.ParseDuration(d); err == nil {
					// Send an absolute time so client and server agree on it.
					req.Deadline = time.Now().Add(dd).UTC().Format(time.RFC3339)
				}
			}
			jobs, err := g.client().submit(cmd.Context(), req)
			if err != nil {
				return asFlagError(err)
			}
			if wait && len(jobs) == 1 {
				return g.follow(cmd.Context(), jobs[0].ID)
			}
			if g.output == "json" {
				if len(jobs) == 1 {
					return writeJSON(g.stdout, jobs[0])
				}
				return writeJSON(g.stdout, jobs)
			}
			for _, j := range jobs {
				fmt.Fprintln(g.stdout, j.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Deadline, "deadline", "", "latest finish: a Go duration (24h) or an RFC 3339 time (required)")
	f.DurationVar(&duration, "duration", 0, "expected run time (default: measured from earlier runs of the same name, else 1h)")
	f.IntVar(&req.GPUs, "gpus", 1, "GPUs the job needs")
	f.StringVar(&kind, "kind", "", "train, sweep or infer (default train; sweep with --trials)")
	f.StringSliceVar(&req.Regions, "regions", nil, "allowed regions, comma-separated (default all)")
	f.StringVar(&req.Name, "name", "", "job name (measurements are remembered per name)")
	f.BoolVar(&req.Interruptible, "interruptible", false, "the job checkpoints and may be paused and resumed")
	f.IntVar(&req.Trials, "trials", 1, "sweep trials: N jobs sharing a group and deadline, each with GREENQ_TRIAL")
	f.StringArrayVar(&tags, "tag", nil, "key=value tag (repeatable), for reports")
	f.StringVar(&req.Key, "key", "", "idempotency key: resubmitting the same key returns the same job")
	f.Float64Var(&req.MaxPriceUSDPerGPUHour, "max-price", 0, "exclude regions dearer than this, USD per GPU-hour")
	f.Float64Var(&req.PowerW, "power-w", 0, "expected draw per GPU in watts, for planning")
	f.StringVar(&req.FunctionalUnit, "functional-unit", "", "what one run produces, for SCI (e.g. \"1000 images\")")
	f.BoolVar(&wait, "wait", false, "follow the job to the end")
	spec.add(f)
	outputFlag(cmd, g)
	return cmd
}

func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, greenq.Invalid("tag", "%q is not key=value", t)
		}
		out[k] = v
	}
	return out, nil
}

// submit posts req and returns the created jobs (several for a sweep).
func (c *client) submit(ctx context.Context, req greenq.SubmitRequest) ([]*greenq.Job, error) {
	raw, err := c.raw(ctx, "POST", "/v1/jobs", req)
	if err != nil {
		return nil, err
	}
	return decodeJobs(raw)
}

// decodeJobs accepts a job, an array of jobs, or {"jobs": [...]}.
func decodeJobs(raw []byte) ([]*greenq.Job, error) {
	var wrapped struct {
		Jobs []*greenq.Job `json:"jobs"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Jobs != nil {
		return wrapped.Jobs, nil
	}
	var list []*greenq.Job
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var one greenq.Job
	if err := json.Unmarshal(raw, &one); err != nil || one.ID == "" {
		return nil, fmt.Errorf("decode jobs: unexpected answer %.200s", raw)
	}
	return []*greenq.Job{&one}, nil
}

func (c *client) job(ctx context.Context, id string) (*greenq.Job, error) {
	var j greenq.Job
	if err := c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func newStatus(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show one job; --wait follows it to the end",
		Example: `  greenq status 01JD… 
  greenq status 01JD… --wait
  greenq status 01JD… -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if wait {
				return g.follow(cmd.Context(), args[0])
			}
			j, err := g.client().job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, j)
			}
			printJob(g.stdout, j, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the job with live progress until it ends")
	outputFlag(cmd, g)
	return cmd
}

// follow polls a job until it reaches a final state, drawing one live
// progress line on a terminal, then prints the job (or its JSON). A job that
// did not succeed exits 1.
func (g *globals) follow(ctx context.Context, id string) error {
	c := g.client()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	tty := isTerminal(g.stdout) && g.output != "json"
	last := ""
	for {
		j, err := c.job(ctx, id)
		if err != nil {
			return err
		}
		if j.State.Final() {
			if tty {
				fmt.Fprint(g.stdout, "\r\033[K")
			}
			if g.output == "json" {
				if err := writeJSON(g.stdout, j); err != nil {
					return err
				}
			} else {
				printJob(g.stdout, j, time.Now())
			}
			if j.State != greenq.StateSucceeded {
				return exitError{code: 1, msg: fmt.Sprintf("job %s ended %s", j.ID, j.State)}
			}
			return nil
		}
		line := progressLine(j, time.Now())
		switch {
		case tty:
			fmt.Fprint(g.stdout, "\r\033[K"+line)
		case g.output != "json" && line != last && j.State != greenq.State(last):
			// Not a terminal: one line per state change, no spinner noise.
			fmt.Fprintln(g.stdout, line)
			last = string(j.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func progressLine(j *greenq.Job, now time.Time) string {
	s := fmt.Sprintf("%s  %-8s", j.ID, j.State)
	switch {
	case j.State == greenq.StateRunning && j.Run != nil:
		s += fmt.Sprintf("  running in %s for %s", j.Run.Region, now.Sub(j.Run.StartedAt).Round(time.Second))
		if d := j.Duration(); d > 0 {
			s += fmt.Sprintf(" of ~%s", d)
		}
	case j.Plan != nil && j.Plan.Start.After(now):
		s += fmt.Sprintf("  starts in %s in %s (%s)", j.Plan.Start.Sub(now).Round(time.Second), j.Plan.Region, j.Plan.Reason)
	case j.Plan != nil:
		s += fmt.Sprintf("  %s, window open", j.Plan.Region)
	default:
		s += "  waiting for a plan"
	}
	return s + fmt.Sprintf("  deadline in %s", j.Deadline.Sub(now).Round(time.Second))
}

func printJob(w io.Writer, j *greenq.Job, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("id", "%s", j.ID)
	if j.Name != "" {
		row("name", "%s", j.Name)
	}
	row("state", "%s", j.State)
	row("kind", "%s", j.Kind)
	row("command", "%s", strings.Join(j.Command, " "))
	row("gpus", "%d", j.GPUs)
	row("submitted", "%s", j.SubmittedAt.Local().Format(time.RFC3339))
	row("deadline", "%s (in %s)", j.Deadline.Local().Format(time.RFC3339), j.Deadline.Sub(now).Round(time.Second))
	if j.Attempts > 1 {
		row("attempts", "%d", j.Attempts)
	}
	if p := j.Plan; p != nil {
		row("plan", "%s at %s, %.3g gCO2e, $%.2f", p.Region, p.Start.Local().Format(time.RFC3339), p.ExpectedGCO2, p.ExpectedCostUSD)
		row("baseline", "%s now, %.3g gCO2e", p.Baseline.Region, p.Baseline.ExpectedGCO2)
		row("reason", "%s", p.Reason)
	}
	if r := j.Run; r != nil {
		s := fmt.Sprintf("%s on %s from %s", r.Region, r.Worker, r.StartedAt.Local().Format(time.RFC3339))
		if r.ExitCode != nil {
			s += fmt.Sprintf(", exit %d", *r.ExitCode)
		}
		row("run", "%s", s)
	}
	if j.Error != "" {
		row("error", "%s", j.Error)
	}
	if r := j.Receipt; r != nil {
		row("energy", "%.3g kWh (%s), PUE %.2f", r.EnergyKWh, r.EnergySource, r.PUE)
		row("intensity", "%.3g gCO2e/kWh (%s signal, %s)", r.IntensityGCO2PerKWh, r.Signal, r.IntensitySource)
		row("emitted", "%.3g gCO2e", r.GCO2)
		row("saved", "%.3g gCO2e against running at once (%.3g)", r.SavedGCO2, r.BaselineGCO2)
	}
	tw.Flush()
}

func newList(g *globals) *cobra.Command {
	var state string
	var limit int
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List jobs",
		Example: "  greenq list --state planned\n  greenq list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if state != "" && !greenq.State(state).Valid() {
				return greenq.Invalid("state", "%q is not a job state", state)
			}
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
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
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tREGION\tSTART\tDEADLINE\tgCO2e")
			for _, j := range jobs {
				region, start, gco2 := "-", "-", "-"
				if j.Plan != nil {
					region, start = j.Plan.Region, j.Plan.Start.Local().Format("01-02 15:04:05")
					gco2 = fmt.Sprintf("%.1f", j.Plan.ExpectedGCO2)
				}
				if j.Receipt != nil {
					gco2 = fmt.Sprintf("%.1f", j.Receipt.GCO2)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Name, j.State, region, start, j.Deadline.Local().Format("01-02 15:04:05"), gco2)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	outputFlag(cmd, g)
	return cmd
}

func newCancel(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a job in any non-final state",
		Example: "  greenq cancel 01JD…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var j greenq.Job
			if err := g.client().do(cmd.Context(), "POST", "/v1/jobs/"+url.PathEscape(args[0])+"/cancel", nil, &j); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s %s\n", j.ID, j.State)
			return nil
		},
	}
}

// Polling bounds of logs -f: quick while output flows, backing off to
// followMax while the job is quiet.
const (
	followMin = 200 * time.Millisecond
	followMax = 2 * time.Second
)

func newLogs(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's output (up to 1 MiB: beyond, its first and latest halves, with the bytes cut between them counted)",
		Long: "Print a job's output. The server keeps all of it up to its bound (1 MiB by default); beyond that the first\n" +
			"and the latest halves, with a line \"… N bytes cut …\" between them. With -f, print new output as the job\n" +
			"writes it until the job ends (a cut made between two reads is printed as such a line); Ctrl-C stops cleanly.",
		Example: "  greenq logs 01JD…\n  greenq logs -f 01JD…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := g.client()
			path := "/v1/jobs/" + url.PathEscape(args[0]) + "/logs"
			if !follow {
				out, err := c.raw(ctx, "GET", path, nil)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(out)
				return err
			}
			var offset int64
			wait, lineEnded := followMin, true
			for {
				out, h, err := c.rawHeader(ctx, "GET", path+"?offset="+strconv.FormatInt(offset, 10), nil)
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted: a clean stop
					}
					return err
				}
				// Output cut before it was read comes as a marker line; when
				// the answer starts with it, the line break before it is ours.
				if n, _ := strconv.ParseInt(h.Get(api.HeaderLogSkipped), 10, 64); n > 0 && !lineEnded &&
					bytes.HasPrefix(out, []byte(queue.CutMarker(n))) {
					out = append([]byte("\n"), out...)
				}
				if len(out) > 0 {
					lineEnded = out[len(out)-1] == '\n'
				}
				if _, err := g.stdout.Write(out); err != nil {
					return err
				}
				next, err := strconv.ParseInt(h.Get(api.HeaderLogOffset), 10, 64)
				if err != nil || next < offset {
					return fmt.Errorf("follow logs: the API answered no usable %s (%q); is the server older than this greenq?", api.HeaderLogOffset, h.Get(api.HeaderLogOffset))
				}
				if h.Get(api.HeaderJobFinal) == "true" {
					return nil
				}
				if next > offset {
					wait = followMin
				} else {
					wait = min(2*wait, followMax)
				}
				offset = next
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the job ends")
	return cmd
}
