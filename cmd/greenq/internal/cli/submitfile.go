package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api"
)

// checkLocally validates req as the server will (but for its regions),
// so bad input never reaches it. flags says whether req came from submit's
// flags, for the words of the one message written here.
func checkLocally(req greenq.SubmitRequest, now time.Time, flags bool) error {
	local := req
	local.Regions = append([]string(nil), req.Regions...)
	_, err := local.Normalize(now, req.Regions)
	var e *greenq.Error
	if !errors.As(err, &e) || e.Field != "deadline" {
		return err
	}
	est := time.Duration(req.DurationEstimateS) * time.Second
	if deadline, perr := greenq.ParseDeadline(req.Deadline, now); perr == nil && est > 0 && deadline.After(now) && deadline.Sub(now) < est {
		// Said here, not as the server says it ("leaves 2m0s, shorter
		// than the duration estimate 2m0s" when both round the same).
		dur := "duration_estimate_s " + strconv.FormatInt(req.DurationEstimateS, 10)
		if flags {
			dur = "--duration " + humanDuration(est)
		}
		return greenq.Invalid("deadline", "%s is too soon for %s: the job must be able to finish by its deadline; give a later deadline or a shorter duration",
			relative(deadline, now), dur)
	}
	return err
}

// absoluteDeadline turns a deadline given as a duration into the time it
// means now, so that client and server agree on it.
func absoluteDeadline(deadline string, now time.Time) string {
	if d, err := time.ParseDuration(strings.TrimSpace(deadline)); err == nil {
		return now.Add(d).UTC().Format(time.RFC3339)
	}
	return deadline
}

// submitted reports jobs just created: their ids on stdout (or the jobs as
// JSON), each sweep's group on stderr, or with wait follows them.
func (g *globals) submitted(ctx context.Context, jobs []*greenq.Job, wait bool) error {
	trials := map[string]int{}
	var groups []string
	for _, j := range jobs {
		if j.Group == "" {
			continue
		}
		if trials[j.Group] == 0 {
			groups = append(groups, j.Group)
		}
		trials[j.Group]++
	}
	for _, gr := range groups {
		fmt.Fprintf(g.stderr, "group %s: %s (greenq list --group %[1]s; greenq cancel --group %[1]s)\n", gr, plural(trials[gr], "trial"))
	}
	if home := homeOf(jobs); home != "" && len(groups) == 0 {
		fmt.Fprintf(g.stderr, "home region %s: savings count against running there at once (--home to change)\n", home)
	}
	if wait {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return g.follow(ctx, ids)
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
}

// homeOf returns the home region the jobs share, "" when they have none
// or several.
func homeOf(jobs []*greenq.Job) string {
	home := ""
	for _, j := range jobs {
		switch {
		case j.HomeRegion == "":
			return ""
		case home == "":
			home = j.HomeRegion
		case home != j.HomeRegion:
			return ""
		}
	}
	return home
}

// fileFlags are the flags --from-file may be given with; every other
// submit flag sets a field of one job, which the file's lines carry.
var fileFlags = map[string]bool{"from-file": true, "wait": true, "output": true, "config": true}

// submitFile reads one JSON job a line from path (- is stdin), checks
// every one, and submits them in one all-or-none batch (POST
// /v1/jobs:batch). Errors name the line and the field.
func (g *globals) submitFile(cmd *cobra.Command, path string, args []string) ([]*greenq.Job, error) {
	if len(args) > 0 {
		return nil, usagef("--from-file: the jobs and their commands come from %s; give no command after --", path)
	}
	var given []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !fileFlags[f.Name] && !f.Hidden && f.Name != "api" {
			given = append(given, "--"+f.Name)
		}
	})
	if len(given) > 0 {
		return nil, usagef("--from-file: each line of %s carries its job's fields; leave out %s", path, strings.Join(given, ", "))
	}
	var in io.Reader
	if path == "-" {
		in = g.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, greenq.Invalid("from-file", "%s: %v", path, err)
		}
		defer f.Close()
		in = f
	}
	now := g.now()
	var (
		reqs  []greenq.SubmitRequest
		lines []int // the line of each request
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), api.DefaultBodyLimit)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if len(reqs) == api.MaxBatch {
			return nil, greenq.Invalid("from-file", "%s has more than %d jobs, the most one batch takes: split it", path, api.MaxBatch)
		}
		var req greenq.SubmitRequest
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, greenq.Invalid("from-file", "%s line %d: %s", path, n, strings.TrimPrefix(err.Error(), "json: "))
		}
		if dec.More() {
			return nil, greenq.Invalid("from-file", "%s line %d: holds more than one JSON value (one job a line)", path, n)
		}
		if err := checkLocally(req, now, false); err != nil {
			return nil, atLine(err, path, n)
		}
		req.Deadline = absoluteDeadline(req.Deadline, now)
		reqs, lines = append(reqs, req), append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, greenq.Invalid("from-file", "%s: %v", path, err)
	}
	if len(reqs) == 0 {
		return nil, greenq.Invalid("from-file", "%s has no jobs: one JSON job a line, e.g. {\"command\": [\"python\", \"train.py\"], \"deadline\": \"24h\"}", path)
	}
	raw, err := g.client().raw(cmd.Context(), "POST", "/v1/jobs:batch", map[string]any{"jobs": reqs})
	if err != nil {
		return nil, batchError(err, path, lines)
	}
	return decodeJobs(raw)
}

// atLine puts a job's validation error on its line of path, keeping the
// error's code.
func atLine(err error, path string, line int) error {
	var e *greenq.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s line %d: %w", path, line, err)
	}
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	return &greenq.Error{Code: e.Code, Field: "from-file", Message: fmt.Sprintf("%s line %d: %s", path, line, msg)}
}

var batchField = regexp.MustCompile(`^jobs\[(\d+)\]\.?(.*)$`)

// batchError puts an error the batch got on the line of the job it names
// (jobs[3].deadline is the fourth job's deadline).
func batchError(err error, path string, lines []int) error {
	var e *greenq.Error
	if !errors.As(err, &e) {
		return err
	}
	m := batchField.FindStringSubmatch(e.Field)
	if m == nil {
		return err
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(lines) {
		return err
	}
	return atLine(&greenq.Error{Code: e.Code, Field: m[2], Message: e.Message}, path, lines[i])
}
