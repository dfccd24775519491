//go:build linux

package worker

import (
	"fmt"
	"syscall"
)

const (
	prSetDumpable = 4 // PR_SET_DUMPABLE
	prGetDumpable = 3 // PR_GET_DUMPABLE
)

// protectProcess makes the worker non-dumpable: its /proc/PID files
// (environ, mem, …) become root's and ptrace is refused, so a job running as
// the worker's own user (no --run-as-user) still cannot read the Redis URL
// or tokens in the worker's environment. Jobs start dumpable again (execve
// resets it), so they can debug themselves.
func protectProcess() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", errno)
	}
	return nil
}

// dumpable reports the process's dumpable flag (for tests).
func dumpable() (bool, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetDumpable, 0, 0)
	if errno != 0 {
		return false, errno
	}
	return r != 0, nil
}
