package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
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
		fromFile string
	)
	cmd := &cobra.Command{
		Use:   "submit --deadline D [flags] -- CMD [ARGS...] | --from-file FILE",
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
deadline, as Slurm's --signal does.

--trials N submits a sweep: N jobs sharing a group, each with GREENQ_TRIAL.
Their ids go to stdout, one a line, and the group to stderr ("group G: …"),
so $(greenq submit …) stays a list of ids; greenq list --group G and
greenq cancel --group G manage the sweep (-o json has the group on each job).

--from-file FILE submits many jobs at once, all or none: one JSON job a
line, with the API's fields ({"command": ["python", "train.py"],
"deadline": "24h", "duration_estimate_s": 3600, …}; - reads stdin). An
error names the line and the field.

--wait follows the jobs to the end and mirrors them in the exit status: 0
when they succeeded; 1 when one failed (its exit code is printed, e.g.
"job 01JD… failed with exit code 3"), was cancelled or expired; 130 when
Ctrl-C stops the wait (the jobs go on).`,
		Example: `  greenq submit --deadline 24h --duration 3h --gpus 1 -- python train.py
  greenq submit --deadline 24h --workdir /shared/me/proj --env-file .env --secret WANDB_API_KEY=wandb -- python3 train.py
  greenq submit --deadline 8h --image registry.example.org/me/train:1.2 --env LR=0.01 -- python3 /app/train.py
  greenq submit --deadline 2026-12-01T09:00:00Z --kind sweep --trials 8 -- python sweep.py
  greenq submit --deadline 3m --duration 20s --wait -- sh -c 'echo hi'
  greenq submit --from-file jobs.jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if fromFile != "" {
				jobs, err := g.submitFile(cmd, fromFile, args)
				if err != nil {
					return err
				}
				return g.submitted(cmd.Context(), jobs, wait)
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
			if err := checkLocally(req, g.now(), true); err != nil {
				return err
			}
			req.Deadline = absoluteDeadline(req.Deadline, g.now())
			jobs, err := g.client().submit(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.submitted(cmd.Context(), jobs, wait)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Deadline, "deadline", "", "latest finish: a Go duration (24h) or an RFC 3339 time (required)")
	f.DurationVar(&duration, "duration", 0, "expected run time (default: measured from earlier runs of the same name, else 1h or a quarter of the time to the deadline, whichever is shorter)")
	f.IntVar(&req.GPUs, "gpus", 1, "GPUs the job needs")
	f.StringVar(&kind, "kind", "", "train, sweep or infer (default train; sweep with --trials)")
	f.StringSliceVar(&req.Regions, "regions", nil, "allowed regions, comma-separated (default all)")
	f.StringVar(&req.Name, "name", "", "job name (measurements are remembered per name)")
	f.BoolVar(&req.Interruptible, "interruptible", false, "the job checkpoints and may be paused and resumed")
	f.IntVar(&req.Trials, "trials", 1, "sweep trials: N jobs sharing a group and deadline, each with GREENQ_TRIAL")
	f.StringArrayVar(&tags, "tag", nil, "key=value tag (repeatable), for reports")
	f.StringVar(&req.Key, "key", "", "idempotency key: resubmitting the same key returns the same job")
	f.Float64Var(&req.MaxPriceUSDPerGPUHour, "max-price", 0, "never run where a GPU-hour costs more than this, USD (refused if no allowed region is ever that cheap)")
	f.StringVar(&req.HomeRegion, "home", "", "region that \"run now\" means, savings are counted against; one of --regions (default the first of them)")
	f.Float64Var(&req.PowerW, "power-w", 0, "expected draw per GPU in watts, for planning")
	f.StringVar(&req.FunctionalUnit, "functional-unit", "", "what one run produces, for SCI (e.g. \"1000 images\")")
	f.BoolVar(&wait, "wait", false, "follow the job to the end; exit 0 if it succeeded, 1 if not (see above)")
	f.StringVar(&fromFile, "from-file", "", "submit every job in FILE (one JSON job a line; - for stdin), all or none")
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
