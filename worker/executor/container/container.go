package container

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/process"
)

// GPU passing modes (Config.GPUMode).
const (
	GPUModeCDI    = "cdi"    // --device nvidia.com/gpu=N (podman, docker 25+)
	GPUModeDocker = "docker" // --gpus device=N,M (docker with the NVIDIA runtime)
	GPUModeNone   = "none"   // only CUDA_VISIBLE_DEVICES (no GPU on this machine)
)

// Config configures the container executor.
type Config struct {
	// Engine is the engine's program, podman or docker (a name in PATH or a
	// path). Default: podman where installed, else docker.
	Engine string
	// GPUMode is how GPUs reach the container: GPUModeCDI, GPUModeDocker or
	// GPUModeNone. Default: cdi where a CDI spec for nvidia.com/gpu exists
	// (/etc/cdi, /var/run/cdi), else docker for docker, else none.
	GPUMode string
	// CDIDirs are where CDI specs are looked for. Default /etc/cdi and
	// /var/run/cdi.
	CDIDirs []string
	// Getenv reads the worker's environment, for the engine's own
	// variables. Default os.Getenv.
	Getenv func(string) string
	// Logger receives the executor's logs. Default: discard.
	Logger *slog.Logger
}

// engineEnvNames are the worker's variables the engine itself may need;
// nothing else of the worker's environment reaches it.
var engineEnvNames = []string{"PATH", "HOME", "USER", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
	"XDG_DATA_HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
	"REGISTRY_AUTH_FILE", "CONTAINER_HOST", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"}

// hostOnlyEnv are job variables that describe the worker's machine, not
// the image: the image brings its own.
var hostOnlyEnv = map[string]bool{"PATH": true, "HOME": true, "USER": true}

// Executor runs jobs in containers.
type Executor struct {
	engine  string
	gpuMode string
	env     []string
	log     *slog.Logger
}

var _ executor.Executor = (*Executor)(nil)

// New finds the engine and returns the executor, or an error when neither
// podman nor docker is installed.
func New(cfg Config) (*Executor, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	engine, err := findEngine(cfg.Engine)
	if err != nil {
		return nil, err
	}
	mode := cfg.GPUMode
	switch mode {
	case "":
		mode = defaultGPUMode(engine, cfg.CDIDirs)
	case GPUModeCDI, GPUModeDocker, GPUModeNone:
	default:
		return nil, fmt.Errorf("container executor: gpu mode %q is not cdi, docker or none", mode)
	}
	var env []string
	for _, n := range engineEnvNames {
		if v := cfg.Getenv(n); v != "" {
			env = append(env, n+"="+v)
		}
	}
	return &Executor{engine: engine, gpuMode: mode, env: env, log: cfg.Logger.With("component", "container")}, nil
}

// Engine returns the engine's program path.
func (e *Executor) Engine() string { return e.engine }

// GPUMode returns how GPUs reach the container.
func (e *Executor) GPUMode() string { return e.gpuMode }

func findEngine(name string) (string, error) {
	if name != "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("container executor: engine %s: %w", name, err)
		}
		return p, nil
	}
	for _, n := range []string{"podman", "docker"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("container executor: neither podman nor docker is installed")
}

func isDocker(engine string) bool { return strings.Contains(filepath.Base(engine), "docker") }

// defaultGPUMode picks CDI where a spec names nvidia.com/gpu.
func defaultGPUMode(engine string, dirs []string) string {
	if len(dirs) == 0 {
		dirs = []string{"/etc/cdi", "/var/run/cdi"}
	}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("nvidia.com/gpu")) {
				return GPUModeCDI
			}
		}
	}
	if isDocker(engine) {
		return GPUModeDocker
	}
	return GPUModeNone
}

// Start implements executor.Executor: it writes the env file and starts
// `ENGINE run`, which pulls the image if it must and runs the command.
func (e *Executor) Start(ctx context.Context, s executor.Spec) (executor.Process, error) {
	if s.Image == "" {
		return nil, errors.New("start: the container executor needs an image")
	}
	if len(s.Argv) == 0 {
		return nil, errors.New("start: no command")
	}
	dir, err := os.MkdirTemp("", "greenq-container-")
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	envFile := filepath.Join(dir, "env")
	if err := writeEnvFile(envFile, s.Env); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start: %w", err)
	}
	name := "greenq-" + sanitize(s.JobID) + "-" + randomHex(4)
	args := e.runArgs(name, envFile, s)
	cmd := exec.Command(e.engine, args...)
	cmd.Env = e.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := s.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", e.engine, err)
	}
	e.log.Debug("container started", "job", s.JobID, "name", name, "image", s.Image)
	return &ctr{e: e, name: name, cmd: cmd, dir: dir}, nil
}

// runArgs are the arguments of `ENGINE run` for s.
func (e *Executor) runArgs(name, envFile string, s executor.Spec) []string {
	args := []string{"run", "--rm", "--init", "--name", name, "--env-file", envFile,
		"--label", "greenq.job=" + s.JobID, "--log-driver", "none"}
	if s.Dir != "" {
		args = append(args, "--workdir", s.Dir)
	}
	for _, m := range s.Mounts {
		v := m.Path + ":" + m.Path
		if m.ReadOnly {
			v += ":ro"
		}
		args = append(args, "--volume", v)
	}
	if u := s.User; u != nil {
		args = append(args, "--user", fmt.Sprintf("%d:%d", u.UID, u.GID))
		for _, g := range u.Groups {
			args = append(args, "--group-add", strconv.FormatUint(uint64(g), 10))
		}
	}
	if len(s.GPUs) > 0 {
		switch e.gpuMode {
		case GPUModeCDI:
			for _, g := range s.GPUs {
				args = append(args, "--device", "nvidia.com/gpu="+strconv.Itoa(g))
			}
		case GPUModeDocker:
			ids := make([]string, len(s.GPUs))
			for i, g := range s.GPUs {
				ids[i] = strconv.Itoa(g)
			}
			args = append(args, "--gpus", `"device=`+strings.Join(ids, ",")+`"`)
		}
	}
	args = append(args, s.Image)
	return append(args, s.Argv...)
}

// writeEnvFile writes env as the engine's --env-file, readable by the
// worker only. The format has no quoting: a value with a newline cannot
// be carried, and is refused rather than cut.
func writeEnvFile(path string, env []string) error {
	var b strings.Builder
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if hostOnlyEnv[name] {
			continue
		}
		if strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("variable %s has a line break, which a container engine's env file cannot carry", name)
		}
		b.WriteString(name + "=" + value + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

type ctr struct {
	e    *Executor
	name string
	cmd  *exec.Cmd
	dir  string

	killMu sync.Mutex
}

// Signal sends sig to the container's processes through the engine (the
// engine's client would not pass every signal on).
func (c *ctr) Signal(sig syscall.Signal) error {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.e.engine, "kill", "--signal", strconv.Itoa(int(sig)), c.name).CombinedOutput()
	if err != nil {
		if c.cmd.ProcessState != nil {
			return nil // already gone
		}
		return fmt.Errorf("signal container %s: %w: %s", c.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Wait waits for `ENGINE run` to end, makes sure the container is gone,
// and removes the env file.
func (c *ctr) Wait() executor.Exit {
	err := c.cmd.Wait()
	defer os.RemoveAll(c.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, c.e.engine, "rm", "--force", c.name).Run()
	if c.cmd.ProcessState == nil {
		return executor.Exit{Code: -1, Err: fmt.Errorf("wait for %s: %w", c.e.engine, err)}
	}
	return executor.Exit{Code: process.ExitCode(c.cmd.ProcessState)}
}

func sanitize(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "job"
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
