package cli

import (
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/stack"
	"github.com/greenq/greenq/worker/executor/slurm"
)

// Executors `greenq worker --executor` takes.
const (
	executorProcess = "process"
	executorSlurm   = "slurm"
)

// executors lists them, for --executor's help and errors; each has a case
// in executorFlags.check and apply.
var executors = []string{executorProcess, executorSlurm, executorKubernetes}

// executorFlags are `greenq worker`'s --executor and each executor's own
// flags.
type executorFlags struct {
	name   string
	slurm  slurm.Config
	meter  string
	kube   kubeFlags
	apiURL string
}

// slurmFlags are the flags only --executor slurm takes.
var slurmFlags = []string{"slurm-partition", "slurm-account", "slurm-spool", "slurm-meter", "slurm-container-flag",
	"slurm-poll-interval", "slurm-time-margin", "slurm-sbatch-arg"}

func (x *executorFlags) flags(f *pflag.FlagSet) {
	f.StringVar(&x.name, "executor", executorProcess, "what runs jobs: "+strings.Join(executors, " or ")+
		" (process: a process group on this machine, or a container for a job with an image; slurm: sbatch on a Slurm partition; kubernetes: a batch/v1 Job per run in --kube-namespace)")
	f.StringVar(&x.slurm.Partition, "slurm-partition", "", "with --executor slurm: the partition jobs are submitted to (required)")
	f.StringVar(&x.slurm.Account, "slurm-account", "", "with --executor slurm: the account jobs are charged to (sbatch --account)")
	f.StringVar(&x.slurm.Spool, "slurm-spool", "", "with --executor slurm: a directory the worker and the nodes share, for each run's batch script, environment file, output and greenq's run files (default $TMPDIR/greenq-slurm)")
	f.StringVar(&x.meter, "slurm-meter", "", "with --executor slurm: the greenq binary, as the nodes see it, that wraps each command (greenq meter) to measure it there; \"none\" for no meter (default this binary)")
	f.StringVar(&x.slurm.ContainerFlag, "slurm-container-flag", "", "with --executor slurm: the sbatch option that runs a job in its image, e.g. --container-image (pyxis); without it jobs with an image are refused")
	f.DurationVar(&x.slurm.PollInterval, "slurm-poll-interval", time.Second, "with --executor slurm: how often a job's state and output are read")
	f.DurationVar(&x.slurm.TimeMargin, "slurm-time-margin", 0, "with --executor slurm: added to a job's duration estimate for its --time, which is never past its deadline (default the estimate again, at least 30m)")
	f.StringArrayVar(&x.slurm.ExtraArgs, "slurm-sbatch-arg", nil, "with --executor slurm: one more sbatch option for every job, e.g. --qos=low (repeatable)")
	f.StringVar(&x.apiURL, "meter-api-url", "", "with --executor slurm or kubernetes: the greenq API's URL as jobs reach it where they run; each run then gets a job token (GREENQ_JOB_TOKEN, GREENQ_API_URL) with which greenq meter posts its energy reading there (default: the reading comes back as a file only)")
	x.kube.flags(f)
}

// check refuses an unknown executor and another executor's flags.
func (x *executorFlags) check(f *pflag.FlagSet) error {
	switch x.name {
	case executorProcess:
		if err := x.kube.refuse(f, x.name); err != nil {
			return err
		}
		if f.Changed("meter-api-url") {
			return greenq.Invalid("meter-api-url", "is for --executor slurm or kubernetes: the process executor measures jobs itself")
		}
		if err := refuseSlurm(f); err != nil {
			return err
		}
	case executorSlurm:
		if err := x.kube.refuse(f, x.name); err != nil {
			return err
		}
		if x.slurm.Partition == "" {
			return greenq.Invalid("slurm-partition", "is required with --executor slurm: the partition jobs are submitted to")
		}
		if x.slurm.PollInterval <= 0 {
			return greenq.Invalid("slurm-poll-interval", "must be positive, got %s", x.slurm.PollInterval)
		}
		if f.Changed("container-engine") {
			return greenq.Invalid("container-engine", "is for --executor process; with Slurm, jobs with an image run through --slurm-container-flag")
		}
		if x.slurm.TimeMargin < 0 {
			return greenq.Invalid("slurm-time-margin", "must not be negative, got %s", x.slurm.TimeMargin)
		}
		for _, a := range x.slurm.ExtraArgs {
			if !strings.HasPrefix(a, "-") {
				return greenq.Invalid("slurm-sbatch-arg", "%q is not an sbatch option such as --qos=low", a)
			}
		}
		if x.slurm.ContainerFlag != "" && !strings.HasPrefix(x.slurm.ContainerFlag, "--") {
			return greenq.Invalid("slurm-container-flag", "%q is not an sbatch option such as --container-image", x.slurm.ContainerFlag)
		}
	case executorKubernetes:
		if err := refuseSlurm(f); err != nil {
			return err
		}
		return x.kube.check(f)
	default:
		return greenq.Invalid("executor", "%q is not one of %s", x.name, strings.Join(executors, ", "))
	}
	return checkAPIURL(x.apiURL)
}

// checkAPIURL refuses a --meter-api-url that is not an absolute http(s) URL.
func checkAPIURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return greenq.Invalid("meter-api-url", "%q is not an http(s) URL such as http://greenq-api.greenq:8080", s)
	}
	return nil
}

// refuseSlurm refuses the Slurm executor's flags for another executor.
func refuseSlurm(f *pflag.FlagSet) error {
	for _, n := range slurmFlags {
		if f.Changed(n) {
			return greenq.Invalid(n, "is for --executor slurm only")
		}
	}
	return nil
}

// apply sets the worker's executor from the flags.
func (x *executorFlags) apply(w *stack.Worker) {
	w.Executor = x.name
	w.Worker.APIURL = strings.TrimRight(x.apiURL, "/")
	if x.name == executorSlurm {
		sc := x.slurm
		w.Slurm = &sc
		w.SlurmMeter = x.meter
	}
	if x.name == executorKubernetes {
		w.Kube = x.kube.options()
	}
}
