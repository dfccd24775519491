// Package testenv handles tests that need a program `make test` installs
// (Chromium, Jupyter, podman, Slurm): without it such a test fails under CI
// (CI set, as CI services set it) and skips elsewhere, saying exactly what
// is missing and how to get it. Redis is not among them: internal/redistest
// starts its own server or fails.
package testenv

import (
	"os"
	"testing"
)

// Missing fails t under CI and skips it elsewhere, with msg.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
}
