package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/joho/godotenv"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/greenq/greenq"
)

// specFlags are submit's flags for what a job carries (greenq.JobSpec).
type specFlags struct {
	env     []string
	envFile []string
	secrets []string
	workdir string
	image   string
	grace   time.Duration
	signal  string
}

func (s *specFlags) add(f *pflag.FlagSet) {
	f.StringArrayVar(&s.env, "env", nil, "K=V variable for the job (repeatable)")
	f.StringArrayVar(&s.envFile, "env-file", nil, "read variables from a dotenv FILE (repeatable; --env wins)")
	f.StringArrayVar(&s.secrets, "secret", nil, "K=NAME: set K from secret NAME in the worker's secret store (repeatable)")
	f.StringVar(&s.workdir, "workdir", "", "where the command starts: a path on the region's shared storage (relative paths are taken from here)")
	f.StringVar(&s.image, "image", "", "run the command in this OCI image")
	f.DurationVar(&s.grace, "grace", 0, "time between SIGTERM and SIGKILL when greenq stops the job (default: the worker's)")
	f.StringVar(&s.signal, "signal", "", "SIG@D: send SIG this long before the deadline, e.g. USR1@5m")
}

// jobSpec turns the flags into a JobSpec; errors name the flag.
func (s *specFlags) jobSpec() (greenq.JobSpec, error) {
	var js greenq.JobSpec
	env := map[string]string{}
	for _, path := range s.envFile {
		m, err := godotenv.Read(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return js, greenq.Invalid("env-file", "%s: %v", path, err)
		}
		for k, v := range m {
			env[k] = v
		}
	}
	for _, kv := range s.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return js, greenq.Invalid("env", "%q is not K=V", kv)
		}
		env[k] = v
	}
	if len(env) > 0 {
		js.Env = env
	}
	for _, kv := range s.secrets {
		k, name, ok := strings.Cut(kv, "=")
		if !ok || k == "" || name == "" {
			return js, greenq.Invalid("secret", "%q is not K=NAME (the variable, then the secret's name on the worker)", kv)
		}
		if js.Secrets == nil {
			js.Secrets = map[string]string{}
		}
		js.Secrets[k] = name
	}
	if s.workdir != "" {
		abs, err := filepath.Abs(s.workdir)
		if err != nil {
			return js, greenq.Invalid("workdir", "%v", err)
		}
		js.Workdir = abs
	}
	js.Image = s.image
	if s.grace < 0 || (s.grace > 0 && s.grace < time.Second) {
		return js, greenq.Invalid("grace", "must be at least 1s, got %s", s.grace)
	}
	js.GraceS = int64(s.grace / time.Second)
	if s.signal != "" {
		sig, before, err := greenq.ParseWarnSignal(s.signal)
		if err != nil {
			return js, greenq.Invalid("signal", "%v", err)
		}
		js.WarnSignal, js.WarnBeforeS = sig, before
	}
	return js, nil
}

// flagOfField names the flag that sets a job field, where they differ.
var flagOfField = map[string]string{
	"secrets": "secret", "grace_s": "grace", "warn_signal": "signal", "warn_before_s": "signal",
	"duration_estimate_s": "duration", "max_price_usd_per_gpu_hour": "max-price", "home_region": "home",
	"power_w": "power-w", "functional_unit": "functional-unit", "tags": "tag",
}

// asFlagError renames the field of a validation error to the flag of cmd
// that sets it (--max-price where the API says max_price_usd_per_gpu_hour,
// --deadline for deadline), so the message names what the user typed.
// Errors about anything else pass unchanged.
func asFlagError(cmd *cobra.Command, err error) error {
	var e *greenq.Error
	if cmd == nil || !errors.As(err, &e) || e.Field == "" || strings.HasPrefix(e.Field, "-") {
		return err
	}
	name := e.Field
	if f, ok := flagOfField[name]; ok {
		name = f
	}
	if cmd.Flags().Lookup(name) == nil {
		return err
	}
	return &greenq.Error{Code: e.Code, Field: "--" + name, Message: e.Message}
}
