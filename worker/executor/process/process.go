//go:build unix

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/greenq/greenq/worker/executor"
)

// readerWait bounds how long output is drained after the job's processes
// are gone (a process that left the group may hold the pipe open).
const readerWait = 2 * time.Second

// Executor runs jobs as process groups. The zero value is ready to use.
type Executor struct{}

var _ executor.Executor = Executor{}

// New returns the process executor.
func New() Executor { return Executor{} }

// Start implements executor.Executor.
func (Executor) Start(_ context.Context, s executor.Spec) (executor.Process, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("start: no command")
	}
	if s.Image != "" {
		return nil, fmt.Errorf("start: the process executor cannot run image %s", s.Image)
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Path, cmd.Err = lookPath(s.Argv[0], s.Env)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean the worker's own environment
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
	if s.User != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.User.UID, Gid: s.User.GID, Groups: s.User.Groups}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start: create output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return nil, fmt.Errorf("start %s: %w", s.Argv[0], err)
	}
	pw.Close()
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, out: pr, copied: make(chan struct{})}
	output := s.Output
	if output == nil {
		output = io.Discard
	}
	go func() { defer close(p.copied); _, _ = io.Copy(output, pr) }()
	return p, nil
}

type proc struct {
	cmd    *exec.Cmd
	pid    int
	out    *os.File
	copied chan struct{}
}

// Signal sends sig to the job's process group.
func (p *proc) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal job: %w", err)
	}
	return nil
}

// Wait waits for the leader, ends whatever it left in its group, and drains
// the output for at most readerWait.
func (p *proc) Wait() executor.Exit {
	waitErr := p.cmd.Wait()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.copied:
	case <-time.After(readerWait):
	}
	p.out.Close()
	<-p.copied
	ps := p.cmd.ProcessState
	if ps == nil {
		return executor.Exit{Code: -1, Err: fmt.Errorf("wait for job: %w", waitErr)}
	}
	return executor.Exit{Code: ExitCode(ps), CPU: ps.UserTime() + ps.SystemTime()}
}

// lookPath finds a command in the job's PATH (not the worker's); a name
// with a slash is taken as it is, relative to the working directory.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // a relative PATH entry would resolve against the workdir
		}
		f := filepath.Join(dir, name)
		if st, err := os.Stat(f); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return f, nil
		}
	}
	return name, fmt.Errorf("%s: %w in the job's PATH (%s)", name, exec.ErrNotFound, path)
}

// ExitCode returns a process's exit status, 128+N for one killed by signal
// N (as shells report it), -1 when unknown.
func ExitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
