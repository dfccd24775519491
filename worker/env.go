package worker

import (
	"os/user"
	"slices"
	"strings"

	"github.com/greenq/greenq"
)

// A job's environment is built, never inherited: the worker's own
// variables hold its Redis URL, provider tokens and passwords, and a job
// that ran `env` would print them into its log. What a job sees, in the
// order later entries win:
//
//  1. a minimal base: PATH, HOME, LANG, TZ and USER (for a job run as
//     another user, that user's HOME and USER);
//  2. the variables the operator allowlists (Config.PassEnv), with the
//     worker's values;
//  3. the job's own env and its secrets, resolved on this worker;
//  4. greenq's job variables (GREENQ_JOB_ID, CUDA_VISIBLE_DEVICES, …).

// defaultPath is PATH for a job when the worker has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// validatePassEnv checks the operator's allowlist: plain variable names,
// none of them greenq's own configuration.
func validatePassEnv(names []string) error {
	for _, n := range names {
		if !greenq.ValidEnvName(n) {
			return greenq.Invalid("pass_env", "%q is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", n)
		}
		if strings.HasPrefix(n, "GREENQ_") {
			return greenq.Invalid("pass_env", "%s is greenq's own configuration and never reaches a job", n)
		}
	}
	return nil
}

// baseEnv is steps 1 and 2: the minimal base and the allowlist, from the
// worker's environment (getenv) and, for a job run as another user, that
// user's home and name.
func baseEnv(getenv func(string) string, passEnv []string, as *runAs) []string {
	path := getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	home, name := getenv("HOME"), getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if as != nil {
		home, name = as.home, as.name
	}
	lang := getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	env := []string{"PATH=" + path, "HOME=" + home, "LANG=" + lang, "USER=" + name}
	if tz := getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	for _, n := range passEnv {
		if v, ok := lookupEnv(getenv, n); ok {
			env = setEnv(env, n, v)
		}
	}
	return env
}

// lookupEnv is os.LookupEnv through getenv: an empty value counts as unset.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// setEnv sets name=value in env, replacing an earlier entry.
func setEnv(env []string, name, value string) []string {
	prefix := name + "="
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, prefix) })
	return append(env, prefix+value)
}

// jobEnv is the whole environment of one run of j: baseEnv, then the job's
// env and resolved secrets, then greenq's variables.
func (w *Worker) jobEnv(j *greenq.Job, secrets map[string]string, vars map[string]string) []string {
	env := slices.Clone(w.base)
	for _, k := range sortedKeys(j.Env) {
		env = setEnv(env, k, j.Env[k])
	}
	for _, k := range sortedKeys(secrets) {
		env = setEnv(env, k, secrets[k])
	}
	for _, k := range sortedKeys(vars) {
		env = setEnv(env, k, vars[k])
	}
	return env
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
