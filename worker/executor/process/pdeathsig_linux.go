//go:build linux

package process

import "syscall"

// setParentDeathSignal kills the job's leader if the worker dies (kill -9),
// so a job asynq hands to another worker does not also keep running here.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
