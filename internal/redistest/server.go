package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Missing is the failure for a machine without redis-server.
const Missing = "redis-server is not on PATH: install it (apt-get install redis-server) or run `make test`, which does"

// Binary returns the path of redis-server, failing the test without one.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(Missing)
	}
	return bin
}

// Server is a redis-server started by a test binary: on a free loopback
// port, with neither RDB snapshots nor an append-only file.
type Server struct {
	// URL is the server's redis:// URL, database 0.
	URL string
	// Addr is the server's host:port.
	Addr string

	cmd   *exec.Cmd
	watch io.WriteCloser
}

// Private starts a redis-server for t alone, with extra configuration
// arguments (e.g. "--maxmemory", "2mb"), stopped at cleanup.
func Private(t testing.TB, args ...string) *Server {
	t.Helper()
	s, err := Start(args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a redis-server with extra configuration arguments and
// returns once it accepts connections. The server is a child of a shell
// that watches a pipe this process holds: however the test binary ends,
// the pipe closes and the shell stops the server, so a server shared by a
// whole test binary needs no explicit Close.
func Start(args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New(Missing)
	}
	// Another process may take the free port before redis-server binds it.
	for range 3 {
		var s *Server
		if s, err = start(bin, args); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// ready is how redis-server (6 and 7) says it accepts connections.
const ready = "eady to accept connections"

func start(bin string, args []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", os.TempDir(), "--logfile", ""}, args...)
	// The shell hands its output to the server alone, so the log pipe
	// closes when the server exits.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `"$0" "$@" & exec >/dev/null 2>&1; read -r _; kill $!; wait`, bin}, argv...)...)
	watch, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, watch: watch}
	if err := awaitReady(r); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// awaitReady reads the server's log until it says it is ready, then drains
// the rest in the background.
func awaitReady(r *os.File) error {
	done := make(chan error, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), ready) {
				done <- nil
				_, _ = io.Copy(io.Discard, r)
				_ = r.Close()
				return
			}
		}
		_ = r.Close()
		done <- fmt.Errorf("redis-server exited before it was ready:\n%s", log.String())
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("redis-server not ready after 30s")
	}
}

// Close stops the server and waits for it.
func (s *Server) Close() {
	_ = s.watch.Close()
	_ = s.cmd.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
