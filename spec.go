package greenq

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// JobSpec is what a job carries so that it runs on a worker in another
// region exactly as it would on the submitter's machine (DESIGN "What a job
// carries"). It is part of both SubmitRequest and Job.
type JobSpec struct {
	// Env are variables for the job. Names match [A-Za-z_][A-Za-z0-9_]*;
	// GREENQ_*, CUDA_* and SLURM_* are the worker's to set.
	Env map[string]string `json:"env,omitempty"`
	// Secrets maps a variable name to the name of a secret the worker
	// resolves from its own store (greenq worker --secrets-dir). Only the
	// name is stored; the value never reaches Redis, logs or receipts.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Workdir is where the command starts, an absolute path on the worker
	// (shared storage, or inside Image). Default: a fresh directory per run
	// under the worker's --work-root.
	Workdir string `json:"workdir,omitempty"`
	// Image runs the command in this OCI image through the worker's
	// container engine. Default: directly on the worker.
	Image string `json:"image,omitempty"`
	// GraceS is the time in seconds between SIGTERM and SIGKILL whenever
	// greenq stops the job. Default 0: the worker's --grace.
	GraceS int64 `json:"grace_s,omitempty"`
	// WarnSignal, with WarnBeforeS, is sent that long before the deadline,
	// as Slurm's --signal (e.g. USR1 five minutes before). Default none.
	WarnSignal  string `json:"warn_signal,omitempty"`
	WarnBeforeS int64  `json:"warn_before_s,omitempty"`
}

// Limits on a job's spec.
const (
	MaxEnvVars  = 256
	MaxEnvBytes = 64 << 10 // names and values together
	MaxGrace    = time.Hour
)

// ReservedEnvPrefixes start the variable names the worker sets itself.
var ReservedEnvPrefixes = []string{"GREENQ_", "CUDA_", "SLURM_"}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	// imageRef is an OCI reference: [registry[:port]/]path[:tag][@digest].
	imageRef = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[a-z0-9]+:[a-f0-9]{32,})?$`)
)

// ValidEnvName reports whether name is a portable variable name.
func ValidEnvName(name string) bool { return envName.MatchString(name) }

// WarnSignals name the signals a job may ask for before its deadline.
var WarnSignals = []string{"USR1", "USR2", "TERM", "INT", "HUP", "QUIT"}

// Grace returns the job's own grace, or def when it sets none.
func (s JobSpec) Grace(def time.Duration) time.Duration {
	if s.GraceS > 0 {
		return time.Duration(s.GraceS) * time.Second
	}
	return def
}

func (s JobSpec) validate() error {
	if len(s.Env)+len(s.Secrets) > MaxEnvVars {
		return Invalid("env", "has %d variables with secrets, more than %d", len(s.Env)+len(s.Secrets), MaxEnvVars)
	}
	size := 0
	for k, v := range s.Env {
		if err := checkEnvName("env", k); err != nil {
			return err
		}
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return Invalid("env", "%s: the value must be UTF-8 text without NUL", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxEnvBytes {
		return Invalid("env", "is %d bytes, more than %d", size, MaxEnvBytes)
	}
	for k, name := range s.Secrets {
		if err := checkEnvName("secrets", k); err != nil {
			return err
		}
		if _, dup := s.Env[k]; dup {
			return Invalid("secrets", "%s is also set in env; give it one source", k)
		}
		if !secretName.MatchString(name) {
			return Invalid("secrets", "%s: %q is not a secret name (letters, digits, '.', '_', '-'; no '/')", k, name)
		}
	}
	if s.Workdir != "" {
		if !path.IsAbs(s.Workdir) || path.Clean(s.Workdir) != s.Workdir || strings.ContainsRune(s.Workdir, 0) || !utf8.ValidString(s.Workdir) || len(s.Workdir) > 4096 {
			return Invalid("workdir", "%q must be a clean absolute path (e.g. /shared/me/proj)", s.Workdir)
		}
	}
	if s.Image != "" && (len(s.Image) > 512 || !imageRef.MatchString(s.Image)) {
		return Invalid("image", "%q is not an OCI image reference such as registry.example.org/team/train:1.2", s.Image)
	}
	if s.GraceS < 0 || time.Duration(s.GraceS)*time.Second > MaxGrace {
		return Invalid("grace_s", "must be between 0 and %d seconds, got %d", int64(MaxGrace/time.Second), s.GraceS)
	}
	switch {
	case s.WarnSignal == "" && s.WarnBeforeS != 0:
		return Invalid("warn_signal", "is required with warn_before_s")
	case s.WarnSignal != "":
		if !slices.Contains(WarnSignals, s.WarnSignal) {
			return Invalid("warn_signal", "%q is not one of USR1, USR2, TERM, INT, HUP, QUIT", s.WarnSignal)
		}
		if s.WarnBeforeS <= 0 || time.Duration(s.WarnBeforeS)*time.Second > MaxDeadlineAhead {
			return Invalid("warn_before_s", "must be a positive number of seconds, got %d", s.WarnBeforeS)
		}
	}
	return nil
}

func checkEnvName(field, name string) error {
	if !ValidEnvName(name) {
		return Invalid(field, "%q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", name)
	}
	for _, p := range ReservedEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return Invalid(field, "%s: names starting %s are set by the worker", name, p)
		}
	}
	return nil
}

// ParseWarnSignal reads the CLI's --signal SIG@DURATION (e.g. USR1@5m, as
// Slurm's --signal) into a signal name and seconds before the deadline.
func ParseWarnSignal(v string) (string, int64, error) {
	sig, at, ok := strings.Cut(v, "@")
	sig = strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	d, err := time.ParseDuration(at)
	if !ok || err != nil || d < time.Second {
		return "", 0, fmt.Errorf("%q is not SIGNAL@DURATION, e.g. USR1@5m", v)
	}
	return sig, int64(d / time.Second), nil
}
