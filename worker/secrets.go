package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// secretStore resolves a job's secret names to values on this worker: one
// file per secret in a directory, as Kubernetes mounts a Secret's keys or
// an operator writes them (mode 0600). A single trailing newline is not
// part of the value (echo adds one).
type secretStore struct {
	dir string // "" when the worker has no secrets
}

// resolve returns env name → value for the job's secrets, or an error
// naming the first secret this worker lacks; values never appear in it.
func (s secretStore) resolve(secrets map[string]string) (map[string]string, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(secrets))
	for _, env := range sortedKeys(secrets) {
		name := secrets[env]
		if s.dir == "" {
			return nil, fmt.Errorf("secret %s (for %s): this worker has no secret store (greenq worker --secrets-dir)", name, env)
		}
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("secret %s (for %s): not a secret name", name, env)
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("secret %s (for %s) is not in this worker's secret store %s", name, env, s.dir)
		case err != nil:
			return nil, fmt.Errorf("secret %s (for %s): cannot be read: %w", name, env, errors.Unwrap(err))
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		out[env] = v
	}
	return out, nil
}
