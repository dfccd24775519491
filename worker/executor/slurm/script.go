package slurm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq/worker/executor"
)

// slurmVars are the variables of the batch step's environment a job keeps
// (besides SLURM_* and SLURMD_*): the device lists Slurm sets for the GPUs
// it allocated.
var slurmVars = []string{"CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK"}

// batchScript is the job's batch script: it drops the node's login
// environment (what --export=NONE leaves) but Slurm's variables, reads the
// job's environment from envFile and deletes it, and execs the command,
// through greenq meter when meter is set. Nothing secret is in it: Slurm
// keeps batch scripts in its state.
func batchScript(s executor.Spec, envFile, meter, reading string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# greenq job %s: its environment is greenq's (read from the run's env file) and Slurm's own variables.\n", sanitize(s.JobID))
	keep := "SLURM_*|SLURMD_*|" + strings.Join(slurmVars, "|")
	b.WriteString("for n in $(command -p env | command -p sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do\n")
	fmt.Fprintf(&b, "  case $n in %s) ;; *) unset \"$n\" 2>/dev/null ;; esac\n", keep)
	b.WriteString("done\n")
	fmt.Fprintf(&b, ". %s\n", quote(envFile))
	fmt.Fprintf(&b, "command -p rm -f %s\n", quote(envFile))
	fmt.Fprintf(&b, "cd %s || exit 1\n", quote(s.Dir))
	b.WriteString("exec")
	if meter != "" {
		fmt.Fprintf(&b, " %s meter --out %s --", quote(meter), quote(reading))
	}
	for _, a := range s.Argv {
		b.WriteString(" " + quote(a))
	}
	b.WriteString("\n")
	return []byte(b.String())
}

// envScript is env as shell assignments the batch script sources: every
// value single-quoted, so any byte but NUL survives, line breaks included.
func envScript(env []string) []byte {
	var b strings.Builder
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !validName(name) {
			continue // the worker builds only valid names; sh could not set others
		}
		fmt.Fprintf(&b, "%s=%s; export %s\n", name, quote(value), name)
	}
	return []byte(b.String())
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// quote single-quotes s for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// minLimit is Slurm's smallest time limit: limits are whole minutes.
const minLimit = time.Minute

// timeLimit is a job's --time when it starts at now: the estimate plus the
// margin (default: the estimate again, at least 30 minutes), cut to the
// partition's MaxTime (0: none) and never past the deadline, in whole
// minutes rounded down. 0 means no limit (no estimate, no deadline, no
// MaxTime). A deadline less than a minute away cannot be kept by a Slurm
// limit and is an error.
func timeLimit(now, deadline time.Time, estimate, margin, maxTime time.Duration) (time.Duration, error) {
	var limit time.Duration
	if estimate > 0 {
		if margin <= 0 {
			margin = max(estimate, 30*time.Minute)
		}
		limit = estimate + margin
	}
	if maxTime > 0 && (limit == 0 || limit > maxTime) {
		limit = maxTime
	}
	if !deadline.IsZero() {
		left := deadline.Sub(now)
		if left < minLimit {
			return 0, fmt.Errorf("deadline %s is %s away, less than Slurm's smallest time limit (1 minute)",
				deadline.UTC().Format(time.RFC3339), left.Round(time.Second))
		}
		if limit == 0 || limit > left {
			limit = left
		}
	}
	return limit.Truncate(time.Minute), nil
}

// formatMinutes writes d as Slurm's days-hours:minutes:seconds.
func formatMinutes(d time.Duration) string {
	m := int64(d / time.Minute)
	return fmt.Sprintf("%d-%02d:%02d:00", m/(24*60), m/60%24, m%60)
}

// parseSlurmDuration reads a Slurm time ("infinite", "30", "1:00:00",
// "2-00:00:00", "UNLIMITED"); ok is false for unlimited or unreadable.
func parseSlurmDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "infinite", "unlimited", "n/a", "none":
		return 0, false
	}
	days := 0
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, false
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return 0, false
		}
		nums[i] = n
	}
	var h, m, sec int
	switch {
	case len(nums) == 3:
		h, m, sec = nums[0], nums[1], nums[2]
	case len(nums) == 2 && days > 0:
		h, m = nums[0], nums[1]
	case len(nums) == 2:
		m, sec = nums[0], nums[1]
	case len(nums) == 1 && days > 0:
		h = nums[0]
	default:
		m = nums[0]
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	return d, d > 0
}

// parseNodes reads `sinfo -h -N -O NodeList:|,StateLong:|,Gres:|,GresUsed:|`:
// the GPUs free on nodes that take jobs, the most GPUs of one node, and
// the GPUs of all nodes.
func parseNodes(out string) (free, largest, all int) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		total, used := gpuCount(f[2]), gpuCount(f[3])
		largest, all = max(largest, total), all+total
		if takesJobs(f[1]) && total > used {
			free += total - used
		}
	}
	return free, largest, all
}

// takesJobs reports whether a node in this state (sinfo's StateLong) can
// start a job now: idle, mixed, allocated or completing, and responding.
func takesJobs(state string) bool {
	state = strings.ToLower(strings.TrimSpace(state))
	if strings.ContainsAny(state, "*~#!%$@^") {
		return false // not responding, powered down or changing, reserved, …
	}
	switch strings.TrimSuffix(state, "+") {
	case "idle", "mixed", "allocated", "completing", "planned":
		return true
	}
	return false
}

// gpuCount sums the gpu entries of a Gres or GresUsed field
// ("gpu:4", "gpu:a100:2(IDX:0-1),gpu:h100:4(S:0)", "(null)").
func gpuCount(field string) int {
	n := 0
	for _, e := range splitTop(field) {
		e, _, _ = strings.Cut(e, "(")
		parts := strings.Split(e, ":")
		if len(parts) < 2 || parts[0] != "gpu" {
			continue
		}
		if c, err := strconv.Atoi(parts[len(parts)-1]); err == nil {
			n += c
		}
	}
	return n
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// accountsEnergy reports whether `scontrol show config` says the cluster
// records jobs' energy: an energy gathering plugin and an accounting store
// sacct can read.
func accountsEnergy(conf string) bool {
	v := func(key string) string {
		for _, line := range strings.Split(conf, "\n") {
			k, val, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(val)
			}
		}
		return ""
	}
	gather, store := v("AcctGatherEnergyType"), v("AccountingStorageType")
	return gather != "" && !strings.HasSuffix(gather, "/none") && store != "" && !strings.HasSuffix(store, "/none")
}

// jobInfo is what `scontrol show job -o` says of a job.
type jobInfo struct {
	State    string // JobState, e.g. RUNNING, COMPLETED, NODE_FAIL
	Reason   string
	Exit     int // ExitCode's status
	Signal   int // ExitCode's signal
	Restarts int
}

// parseJob reads one line of `scontrol show job -o ID`.
func parseJob(line string) (jobInfo, error) {
	var ji jobInfo
	found := false
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "JobState":
			ji.State, found = v, true
		case "Reason":
			ji.Reason = v
		case "Restarts":
			ji.Restarts, _ = strconv.Atoi(v)
		case "ExitCode":
			st, sig, _ := strings.Cut(v, ":")
			ji.Exit, _ = strconv.Atoi(st)
			ji.Signal, _ = strconv.Atoi(sig)
		}
	}
	if !found {
		return ji, fmt.Errorf("no JobState in %q", line)
	}
	return ji, nil
}

// final reports whether Slurm is done with a job in state s.
func final(s string) bool {
	switch s {
	case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
		"DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT":
		return true
	}
	return false
}

// requeued reports whether Slurm put a job that had started back in its
// queue (a node failure or preemption on a cluster that requeues).
func requeued(s string) bool {
	switch s {
	case "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED":
		return true
	}
	return false
}

// exitOf maps a final job to an Exit: the status (128+N for signal N);
// errors for Slurm's own ends (time limit, memory, deadline), and
// executor.ErrLost for the node's (failure, preemption, boot).
func exitOf(id string, ji jobInfo) executor.Exit {
	code := ji.Exit
	if ji.Signal != 0 {
		code = 128 + ji.Signal
	}
	ex := executor.Exit{Code: code}
	switch ji.State {
	case "CANCELLED":
		if ji.Signal == 0 && ji.Exit == 0 {
			ex.Code = 128 + 15 // cancelled before it ran, or without a signal of its own
		}
	case "TIMEOUT":
		ex.Err = fmt.Errorf("slurm job %s reached its time limit (TIMEOUT)", id)
	case "OUT_OF_MEMORY":
		ex.Err = fmt.Errorf("slurm job %s ran out of memory (OUT_OF_MEMORY)", id)
	case "DEADLINE":
		ex.Err = fmt.Errorf("slurm job %s passed its deadline in Slurm (DEADLINE)", id)
	case "NODE_FAIL", "PREEMPTED", "BOOT_FAIL":
		ex.Err = fmt.Errorf("slurm job %s ended %s: %w", id, ji.State, executor.ErrLost)
	case "REVOKED":
		ex.Err = fmt.Errorf("slurm job %s was revoked (it ran on another cluster of a federation)", id)
	}
	return ex
}

// errGone is a job scontrol no longer knows.
var errGone = errors.New("slurm no longer knows the job")
