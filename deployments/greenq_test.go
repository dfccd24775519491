package deployments

// The real greenq binary, built once for the whole package, and what its
// --help says about each command's flags.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// envBinary names a prebuilt greenq binary to test against instead of
// building ./cmd/greenq (e.g. bin/greenq from make build).
const envBinary = "GREENQ_TEST_BIN"

var (
	binPath  string // the greenq binary, when buildErr is nil
	buildErr error
)

func TestMain(m *testing.M) {
	code := func() int {
		if p := os.Getenv(envBinary); p != "" {
			binPath = p
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "greenq-deployments-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, "deployments test:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "greenq")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/greenq")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/greenq: %w\n%s", err, out)
		}
		return m.Run()
	}()
	os.Exit(code)
}

// greenqBinary returns the path of the greenq binary or fails the test.
func greenqBinary(t *testing.T) string {
	t.Helper()
	require.NoError(t, buildErr, "the deployment files are checked against the greenq binary")
	return binPath
}

// flagSpec is one flag as --help shows it.
type flagSpec struct {
	name string
	typ  string // "" for a boolean flag
}

// commandHelp is what `greenq CMD --help` says.
type commandHelp struct {
	usage string
	flags map[string]flagSpec
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]commandHelp{}
)

// flagLine matches pflag's usage lines: "  -c, --name type   usage" or
// "      --name   usage" (the type, when present, is one space after the
// name; the usage is two or more spaces further).
var flagLine = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)(?: (\S+))?(?:\s{2,}|$)`)

// help runs `greenq CMD --help` once per command.
func help(t *testing.T, cmd string) commandHelp {
	t.Helper()
	bin := greenqBinary(t)
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[cmd]; ok {
		return h
	}
	var out bytes.Buffer
	c := exec.Command(bin, cmd, "--help")
	c.Stdout, c.Stderr = &out, &out
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	require.NoError(t, c.Run(), "greenq %s --help:\n%s", cmd, out.String())
	h := commandHelp{flags: map[string]flagSpec{}}
	text := out.String()
	if i := strings.Index(text, "Usage:"); i >= 0 {
		h.usage = text[i:]
	}
	require.Regexp(t, `(?m)^\s+greenq `+regexp.QuoteMeta(cmd)+`\b`, h.usage,
		"`greenq %s --help` shows no usage for %q: is it a command of the binary?", cmd, cmd)
	for _, m := range flagLine.FindAllStringSubmatch(text, -1) {
		h.flags[m[1]] = flagSpec{name: m[1], typ: m[2]}
	}
	helpCache[cmd] = h
	return h
}

// commandLine is a greenq invocation found in a deployment file.
type commandLine struct {
	where string   // file and object, for messages
	argv  []string // after the binary: command, flags, values
}

// parsedCommand is a greenq invocation split into command and flags.
type parsedCommand struct {
	cmd   string
	flags map[string]string // name → value ("true" for a bare boolean)
}

// checkCommandLine asserts that the command exists, that every flag is
// one of its flags (or a global flag), and that typed values parse.
func checkCommandLine(t *testing.T, cl commandLine) parsedCommand {
	t.Helper()
	require.NotEmpty(t, cl.argv, "%s: greenq without a command", cl.where)
	pc := parsedCommand{cmd: cl.argv[0], flags: map[string]string{}}
	require.NotEqual(t, '-', rune(pc.cmd[0]), "%s: the command must come first, got %q", cl.where, pc.cmd)
	h := help(t, pc.cmd)
	args := cl.argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		require.True(t, strings.HasPrefix(a, "--"), "%s: unexpected argument %q (use --flag=value)", cl.where, a)
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		spec, ok := h.flags[name]
		require.True(t, ok, "%s: `greenq %s` has no flag --%s (see greenq %s --help)", cl.where, pc.cmd, name, pc.cmd)
		if !hasValue {
			if spec.typ == "" {
				value = "true"
			} else {
				require.Less(t, i+1, len(args), "%s: --%s needs a value", cl.where, name)
				i++
				value = args[i]
			}
		}
		checkFlagValue(t, cl.where, spec, value)
		pc.flags[name] = value
	}
	return pc
}

// checkFlagValue parses value as the flag's type says.
func checkFlagValue(t *testing.T, where string, spec flagSpec, value string) {
	t.Helper()
	var err error
	switch spec.typ {
	case "int", "int32", "int64", "uint":
		_, err = strconv.Atoi(value)
	case "duration":
		_, err = time.ParseDuration(value)
	case "float", "float64":
		_, err = strconv.ParseFloat(value, 64)
	case "":
		_, err = strconv.ParseBool(value)
	}
	require.NoError(t, err, "%s: --%s=%q is not a valid %s", where, spec.name, value, spec.typ)
}

// requireBinaryReads asserts that the binary mentions the environment
// variable, i.e. some code of greenq reads it.
func requireBinaryReads(t *testing.T, names ...string) {
	t.Helper()
	data, err := os.ReadFile(greenqBinary(t))
	require.NoError(t, err)
	for _, n := range names {
		require.True(t, bytes.Contains(data, []byte(n)), "the greenq binary never reads %s, which the deployment files set", n)
	}
}
