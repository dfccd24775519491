package deployments

// Tests of the Dockerfile, the systemd units and the local stack script.

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greenq/greenq/internal/redistest"
	"github.com/stretchr/testify/require"
)

// dockerStage is one FROM … AS name stage of the Dockerfile.
type dockerStage struct {
	name, from string
	instr      []dockerInstr
}

// dockerInstr is one instruction, continuation lines joined.
type dockerInstr struct {
	op, args string
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		op, args, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		args = strings.TrimSpace(args)
		if op == "FROM" {
			f := strings.Fields(args)
			s := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			require.Equal(t, "ARG", op, "%s: only ARG may precede the first FROM", path)
			return
		}
		s := &stages[len(stages)-1]
		s.instr = append(s.instr, dockerInstr{op, args})
	}
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func (s dockerStage) last(op string) (string, bool) {
	for i := len(s.instr) - 1; i >= 0; i-- {
		if s.instr[i].op == op {
			return s.instr[i].args, true
		}
	}
	return "", false
}

func execForm(t *testing.T, where, args string) []string {
	t.Helper()
	var argv []string
	require.NoError(t, json.Unmarshal([]byte(args), &argv), "%s: use the exec (JSON) form", where)
	return argv
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, "docker/Dockerfile")
	byName := map[string]dockerStage{}
	for i, s := range stages {
		if s.name != "" {
			byName[s.name] = s
		}
		for _, in := range s.instr {
			if in.op != "COPY" || !strings.Contains(in.args, "--from=") {
				continue
			}
			from := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.args)[1]
			found := false
			for _, earlier := range stages[:i] {
				found = found || earlier.name == from
			}
			require.True(t, found, "stage %s copies from unknown stage %s", s.name, from)
		}
		for _, in := range s.instr {
			if in.op != "RUN" {
				continue
			}
			for _, m := range regexp.MustCompile(`go build .*?-o \S+ (\./\S+)`).FindAllStringSubmatch(in.args, -1) {
				st, err := os.Stat(filepath.Join("..", m[1]))
				require.NoError(t, err, "stage %s builds %s", s.name, m[1])
				require.True(t, st.IsDir())
			}
		}
	}
	tests := []struct {
		stage, cgo, user, port string
		cmd                    string
	}{
		{stage: "server", cgo: "CGO_ENABLED=0", user: "65532", port: "8080", cmd: "server"},
		{stage: "worker", cgo: "CGO_ENABLED=1", user: "10001", port: "9090", cmd: "worker"},
	}
	for _, tt := range tests {
		t.Run(tt.stage, func(t *testing.T) {
			t.Parallel()
			s, ok := byName[tt.stage]
			require.True(t, ok, "no stage %s", tt.stage)

			user, ok := s.last("USER")
			require.True(t, ok, "stage %s: no USER", tt.stage)
			uid, _, _ := strings.Cut(user, ":")
			require.NotContains(t, []string{"0", "root"}, uid)
			require.Equal(t, tt.user, uid, "stage %s: the Kubernetes manifests run as this uid", tt.stage)

			// The greenq binary comes from a build stage with the right cgo setting.
			var buildStage string
			for _, in := range s.instr {
				if in.op == "COPY" && strings.HasSuffix(in.args, " /usr/local/bin/greenq") {
					buildStage = regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.args)[1]
				}
			}
			require.NotEmpty(t, buildStage, "stage %s does not install /usr/local/bin/greenq", tt.stage)
			var built bool
			for _, in := range byName[buildStage].instr {
				built = built || (in.op == "RUN" && strings.Contains(in.args, tt.cgo+" go build -trimpath -ldflags=\"-s -w\" -o /out/greenq ./cmd/greenq"))
			}
			require.True(t, built, "stage %s must build greenq with %s", buildStage, tt.cgo)

			hc, ok := s.last("HEALTHCHECK")
			require.True(t, ok, "stage %s: no HEALTHCHECK", tt.stage)
			_, hcCmd, ok := strings.Cut(hc, "CMD ")
			require.True(t, ok)
			argv := execForm(t, tt.stage+" HEALTHCHECK", hcCmd)
			require.Equal(t, "/usr/local/bin/healthcheck", argv[0])
			require.Contains(t, argv[1], ":"+tt.port+"/", "stage %s: health check port", tt.stage)

			entry, ok := s.last("ENTRYPOINT")
			require.True(t, ok)
			argv = execForm(t, tt.stage+" ENTRYPOINT", entry)
			require.Equal(t, "/usr/local/bin/greenq", argv[0])
			if cmd, ok := s.last("CMD"); ok {
				argv = append(argv, execForm(t, tt.stage+" CMD", cmd)...)
			}
			pc := checkCommandLine(t, commandLine{where: "Dockerfile stage " + tt.stage, argv: argv[1:]})
			require.Equal(t, tt.cmd, pc.cmd)
		})
	}
}

// unit is a systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q is not key=value", path, line)
			require.NotEmpty(t, section, "%s: %q outside a section", path, line)
			u[section][k] = append(u[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

func (u unit) one(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, cmd, instance string
	}{
		{file: "greenq-server.service", cmd: "server"},
		{file: "greenq-worker@.service", cmd: "worker", instance: "eu-north"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			u := parseUnit(t, filepath.Join("systemd", tt.file))
			require.Contains(t, u, "Unit")
			require.Contains(t, u, "Install")
			s := u["Service"]
			require.NotNil(t, s)

			// Hardening.
			require.Equal(t, "yes", u.one("Service", "NoNewPrivileges"))
			require.Equal(t, "strict", u.one("Service", "ProtectSystem"))
			require.Equal(t, "yes", u.one("Service", "PrivateTmp"))
			require.Contains(t, s, "CapabilityBoundingSet")
			dynamic := u.one("Service", "DynamicUser") == "yes"
			user := u.one("Service", "User")
			if tt.cmd == "worker" {
				// Root with only what starting jobs as another user takes,
				// so a job cannot read the worker's environment or config.
				require.Empty(t, user, "the worker runs as root to start jobs as greenq-job")
				require.ElementsMatch(t, []string{"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"},
					strings.Fields(u.one("Service", "CapabilityBoundingSet")))
				require.Contains(t, s["ExecStart"][0], "--run-as-user=greenq-job")
				require.Equal(t, "greenq.yaml:/etc/greenq/greenq.yaml", u.one("Service", "LoadCredential"), "the config reaches the worker as a root-only credential")
			} else {
				require.Equal(t, "", u.one("Service", "CapabilityBoundingSet"))
				require.True(t, dynamic || (user != "" && user != "root" && user != "0"), "run as DynamicUser or a non-root User")
			}

			// Environment=: defaults only, never credentials (EnvironmentFile for those).
			vars := map[string]string{}
			for _, line := range s["Environment"] {
				for _, kv := range strings.Fields(line) {
					k, v, _ := strings.Cut(kv, "=")
					require.False(t, secretName.MatchString(k), "%s: %s belongs in an EnvironmentFile", tt.file, k)
					vars[k] = v
				}
			}
			for k := range vars {
				requireBinaryReadsOrExpands(t, s["ExecStart"], k)
			}

			require.Len(t, s["ExecStart"], 1)
			exec := strings.ReplaceAll(s["ExecStart"][0], "%i", tt.instance)
			exec = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).ReplaceAllStringFunc(exec, func(m string) string {
				if m == "${CREDENTIALS_DIRECTORY}" { // set by systemd for LoadCredential
					return "/run/credentials/" + tt.file
				}
				v, ok := vars[m[2:len(m)-1]]
				require.True(t, ok, "%s: %s has no default in Environment=", tt.file, m)
				return v
			})
			argv := strings.Fields(exec)
			require.Equal(t, "/usr/local/bin/greenq", argv[0])
			pc := checkCommandLine(t, commandLine{where: tt.file, argv: argv[1:]})
			require.Equal(t, tt.cmd, pc.cmd)
			if tt.cmd == "worker" {
				require.Equal(t, tt.instance, pc.flags["region"], "the instance name is the region")
				grace, err := time.ParseDuration(pc.flags["grace"])
				require.NoError(t, err)
				stop, err := time.ParseDuration(u.one("Service", "TimeoutStopSec"))
				require.NoError(t, err)
				require.GreaterOrEqual(t, stop, grace+10*time.Second, "TimeoutStopSec covers --grace plus a margin")
				require.Equal(t, "SIGTERM", u.one("Service", "KillSignal"))
			}
		})
	}
}

// requireBinaryReadsOrExpands accepts an Environment= variable that the
// unit itself expands in ExecStart, and otherwise asks the binary.
func requireBinaryReadsOrExpands(t *testing.T, execStart []string, name string) {
	t.Helper()
	if strings.Contains(strings.Join(execStart, " "), "${"+name+"}") {
		return
	}
	requireBinaryReads(t, name)
}

func TestLocalScriptLint(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("bash", "-n", "local/run.sh").CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)
	st, err := os.Stat("local/run.sh")
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&0o111, "local/run.sh must be executable")
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck not on PATH: skipped")
		return
	}
	out, err = exec.Command("shellcheck", "local/run.sh").CombinedOutput()
	require.NoError(t, err, "shellcheck: %s", out)
}

// TestLocalScriptCommands checks the greenq command lines of run.sh
// against the binary, and its config against the config schema.
func TestLocalScriptCommands(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("local/run.sh")
	require.NoError(t, err)
	lines := regexp.MustCompile(`(?m)"\$greenq" (\w+)(.*)$`).FindAllStringSubmatch(string(data), -1)
	require.Len(t, lines, 2, "run.sh starts greenq server and greenq worker")
	for _, m := range lines {
		argv := []string{m[1]}
		for _, f := range strings.Fields(m[2]) {
			// "--region=$region" → "--region=x": the values are shell variables.
			f = strings.Trim(f, `"`)
			if name, _, ok := strings.Cut(f, "="); ok && strings.HasPrefix(f, "--") {
				f = name + "=" + placeholderFor(name)
			}
			argv = append(argv, f)
		}
		checkCommandLine(t, commandLine{where: "local/run.sh", argv: argv})
	}
	text, err := os.ReadFile("local/greenq.yaml")
	require.NoError(t, err)
	cfg := parseGreenqConfig(t, "local/greenq.yaml", string(text))
	require.NotNil(t, cfg.Providers.File)
	for _, r := range cfg.Regions {
		require.FileExists(t, filepath.Join("..", cfg.Providers.File.Dir, r.Zone+".csv"), "region %s's history", r.Name)
	}
}

// placeholderFor gives a valid value for a flag whose value run.sh fills
// from a shell variable.
func placeholderFor(flag string) string {
	switch flag {
	case "--gpus", "--concurrency":
		return "1"
	case "--grace":
		return "10s"
	default:
		return "x"
	}
}

// TestLocalStack runs run.sh with the real binary and redis-server: the
// server must become ready, and SIGTERM to the script must stop every
// process it started.
func TestLocalStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, the server and three workers")
	}
	redistest.Binary(t)
	bin := greenqBinary(t)
	t.Parallel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := l.Addr().String()
	require.NoError(t, l.Close())

	cmd := exec.Command("bash", "local/run.sh")
	cmd.Env = append(os.Environ(), "GREENQ_BIN="+bin, "GREENQ_LISTEN="+listen, "WORKER_GRACE=1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = cmd.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() {
		// Only if the test failed before the script stopped: end the
		// process group this test started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})

	ready := make(chan struct{})
	var readyOnce sync.Once
	var log lockedLog
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.add(sc.Text())
			if strings.Contains(sc.Text(), "local stack ready") {
				readyOnce.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		<-logDone
		exited <- cmd.Wait()
	}()

	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("run.sh exited before ready: %v\n%s", err, log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("run.sh not ready within 60s\n%s", log.String())
	}
	resp, err := http.Get("http://" + listen + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("run.sh did not stop within 30s of SIGTERM\n%s", log.String())
	}
	require.Contains(t, log.String(), "run.sh: stopped")
	// Every process of the group is gone (allowing for the reaping of
	// orphans, which is not ours to wait on).
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-cmd.Process.Pid, 0) == nil {
		require.True(t, time.Now().Before(deadline), "processes left behind:\n%s", log.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedLog collects a process's output lines for failure messages.
type lockedLog struct {
	mu    sync.Mutex
	lines strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines.WriteString(line + "\n")
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines.String()
}
