//go:build !linux

package worker

// protectProcess has no equivalent of Linux's PR_SET_DUMPABLE here; run
// jobs as another user (--run-as-user) to keep them from the worker's
// environment.
func protectProcess() error { return nil }

func dumpable() (bool, error) { return true, nil }
