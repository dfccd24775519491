//go:build unix

package redis

// The Redis roles of redis/users.acl, checked against a real redis-server
// that loads the file: a real greenq worker authenticated as greenq-worker
// runs, cancels and pauses jobs that greenq-server submitted and released,
// without one ACL denial, and the worker role is refused what a worker
// never does.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker"
)

// aclFile is the shipped ACL file; aclRoles are its users whose password
// placeholder (#REPLACE_ME_SHA256_OF_<ROLE>_PASSWORD) the test fills in.
const aclFile = "users.acl"

var aclRoles = []string{"admin", "server", "worker"}

// aclRedis is a private redis-server that loaded the ACL file.
type aclRedis struct {
	addr    string
	aclPath string            // the filled-in copy it loaded
	shipped []byte            // the file as shipped, placeholders and all
	pass    map[string]string // user → password
}

// startACLRedis starts redis-server on a free loopback port in a temp dir
// with a copy of the ACL file whose placeholders are replaced by the
// SHA-256 of random passwords. ACL users are server-wide, so this never
// touches the shared test server (GREENQ_TEST_REDIS_URL).
func startACLRedis(t *testing.T) *aclRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not on PATH: the Redis roles are tested against a real server "+
		"(`make test` installs it; or apt-get install redis-server)")
	shipped, err := os.ReadFile(aclFile)
	require.NoError(t, err)
	r := &aclRedis{shipped: shipped, pass: map[string]string{}}
	acl := string(shipped)
	for _, role := range aclRoles {
		ph := "#REPLACE_ME_SHA256_OF_" + strings.ToUpper(role) + "_PASSWORD"
		require.Equal(t, 1, strings.Count(acl, ph), "%s: expected the placeholder %s once", aclFile, ph)
		pw := rand.Text()
		sum := sha256.Sum256([]byte(pw))
		acl = strings.Replace(acl, ph, "#"+hex.EncodeToString(sum[:]), 1)
		r.pass["greenq-"+role] = pw
	}
	require.NotContains(t, acl, "REPLACE_ME", "%s: a placeholder the test does not know", aclFile)
	dir := t.TempDir()
	r.aclPath = filepath.Join(dir, "users.acl")
	require.NoError(t, os.WriteFile(r.aclPath, []byte(acl), 0o600))

	var lastLog string
	for range 3 { // the free port may be taken between Close and redis binding it
		port := freePort(t)
		// DEBUG and MODULE are enabled so that the worker's refusals below
		// come from the ACL, not from Redis's own protection of them.
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--aclfile", r.aclPath,
			"--enable-debug-command", "yes", "--enable-module-command", "yes")
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = cmd.Stdout
		require.NoError(t, cmd.Start())
		ready, log := watchLog(out)
		select {
		case ok := <-ready:
			if ok {
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				r.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
				return r
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
		lastLog = log.String()
		if !strings.Contains(lastLog, "Address already in use") {
			break
		}
	}
	t.Fatalf("redis-server did not start with %s:\n%s", aclFile, lastLog)
	return nil
}

// watchLog drains redis-server's output (it would block on a full pipe)
// and reports on ready whether it became ready before exiting.
func watchLog(out io.Reader) (<-chan bool, *syncBuffer) {
	ready := make(chan bool, 1)
	log := &syncBuffer{}
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			log.write(sc.Text() + "\n")
			if !said && strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
				said = true
			}
		}
		if !said {
			ready <- false
		}
	}()
	return ready, log
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) write(p string) { s.mu.Lock(); s.b.WriteString(p); s.mu.Unlock() }

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// client returns a go-redis client authenticated as user, as greenq builds
// it from redis://user:password@host:port/0.
func (r *aclRedis) client(t *testing.T, user string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(r.url(user))
	require.NoError(t, err)
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()).Err(), "ping as %s", user)
	return c
}

func (r *aclRedis) url(user string) string {
	return "redis://" + user + ":" + r.pass[user] + "@" + r.addr + "/0"
}

// asynqOpt is asynq's connection as user (what stack.Connect builds from
// the same URL).
func (r *aclRedis) asynqOpt(user string) asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: r.addr, Username: user, Password: r.pass[user]}
}

// finishStore is the worker's store with a signal for every Finish.
type finishStore struct {
	*queue.Store
	finished chan finishEvent
}

type finishEvent struct {
	id    string
	state greenq.State
	err   error
}

func (s *finishStore) Finish(ctx context.Context, id string, f queue.FinishRequest) (*greenq.Job, error) {
	j, err := s.Store.Finish(ctx, id, f)
	s.finished <- finishEvent{id: id, state: f.State, err: err}
	return j, err
}

var _ worker.Store = (*finishStore)(nil)

// aclLogger sends logs to t.Log until the test ends.
func aclLogger(t *testing.T) *slog.Logger {
	w := &aclLogWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, nil))
}

type aclLogWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *aclLogWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// denied matches a refusal by the ACL: NOPERM for a command, key or
// channel, or (Redis 7.0) the error a script's redis.call gives.
var denied = regexp.MustCompile(`^NOPERM |user executing the script can't (access|run)`)

func TestRedisACLRoles(t *testing.T) {
	t.Parallel()
	r := startACLRedis(t)
	ctx := context.Background()
	admin := r.client(t, "greenq-admin")
	serverRDB := r.client(t, "greenq-server")
	workerRDB := r.client(t, "greenq-worker")

	// Secure by default: the file as shipped does not load (its
	// placeholders are not valid password hashes), and without credentials
	// nothing is allowed.
	require.NoError(t, os.WriteFile(r.aclPath, r.shipped, 0o600))
	require.ErrorContains(t, admin.Do(ctx, "ACL", "LOAD").Err(), "password hash must be exactly 64 characters",
		"%s as shipped must not load until every placeholder is replaced", aclFile)
	anon := redis.NewClient(&redis.Options{Addr: r.addr})
	defer anon.Close()
	require.ErrorContains(t, anon.Ping(ctx).Err(), "NOAUTH", "the default user must be off")

	// The server role stores a job, a forecast and plans, and releases.
	const region, tenant = "eu-north", "alice"
	srv, err := queue.NewStore(serverRDB, queue.Config{Logger: aclLogger(t),
		Regions: []greenq.Region{{Name: region, Zone: "SE-SE1", PUE: 1.2, GPUPriceUSDPerHour: 2}}})
	require.NoError(t, err)
	now := time.Now().Truncate(time.Hour)
	series := forecast.Series{Region: region, Zone: "SE-SE1", Source: "test", Signal: forecast.SignalAverage, IssuedAt: now}
	for h := -2; h < 48; h++ {
		at := now.Add(time.Duration(h) * time.Hour)
		series.Points = append(series.Points, forecast.Point{Start: at, End: at.Add(time.Hour), GCO2PerKWh: 40, Kind: forecast.KindForecast})
	}
	require.NoError(t, srv.PutSeries(ctx, series))
	rel, err := queue.NewReleaser(srv, queue.ReleaserConfig{RedisConnOpt: r.asynqOpt("greenq-server"), Logger: aclLogger(t)})
	require.NoError(t, err)
	defer rel.Close()
	submit := func(req greenq.SubmitRequest) string {
		t.Helper()
		req.Deadline, req.Regions, req.GPUs = "2h", []string{region}, 1
		jobs, err := srv.Submit(ctx, tenant, req)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		id := jobs[0].ID
		start := time.Now()
		_, err = srv.SetPlans(ctx, map[string]greenq.Plan{id: {Region: region, Start: start, End: start.Add(time.Hour), Urgent: true, Reason: "acl test"}})
		require.NoError(t, err)
		_, err = rel.ReleaseDue(ctx)
		require.NoError(t, err)
		return id
	}

	// The worker role runs a real worker: its store and asynq both
	// authenticate as greenq-worker.
	ws, err := queue.NewStore(workerRDB, queue.Config{Logger: aclLogger(t)})
	require.NoError(t, err)
	// It reads the region facts the server shares, for its receipts.
	require.NoError(t, srv.PublishRegions(ctx))
	facts, ok, err := ws.SharedRegions(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1.2, facts.Regions[0].PUE)
	fs := &finishStore{Store: ws, finished: make(chan finishEvent, 8)}
	w, err := worker.New(worker.Config{
		Region: region, GPUs: 1, ID: "acl-worker", Grace: 2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond, CancelPollInterval: 200 * time.Millisecond,
		Meter: &worker.EstimateMeter{}, SysRoot: t.TempDir(), CheckpointRoot: t.TempDir(),
		PUE: map[string]float64{region: 1.2}, Logger: aclLogger(t),
	}, fs, r.asynqOpt("greenq-worker"))
	require.NoError(t, err)
	defer w.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(runCtx) }()
	waitFinish := func(id string) finishEvent {
		t.Helper()
		select {
		case f := <-fs.finished:
			require.Equal(t, id, f.id)
			return f
		case err := <-runErr:
			t.Fatalf("worker stopped before job %s finished: %v", id, err)
		case <-time.After(15 * time.Second):
			t.Fatalf("job %s did not finish; ACL denials: %v", id, aclLog(t, admin))
		}
		return finishEvent{}
	}
	dir := t.TempDir()

	// 1. A named job succeeds: start, receipt (reads the forecast),
	// measurement, and a log longer than the store keeps (head, trimmed
	// tail, and the worker's own cut when it falls behind).
	id1 := submit(greenq.SubmitRequest{Name: "acl-train", Command: []string{"sh", "-c",
		"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 3000000; echo; echo hello from greenq-worker"}})
	f := waitFinish(id1)
	require.NoError(t, f.err)
	require.Equal(t, greenq.StateSucceeded, f.state)
	j := mustJob(t, srv, tenant, id1)
	require.Equal(t, greenq.StateSucceeded, j.State)
	require.NotNil(t, j.Receipt)
	logs, err := srv.Logs(ctx, tenant, id1)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(logs, []byte("hello from greenq-worker\n")),
		"the log's tail must be the job's last output; it ends %q (ACL denials: %v)", logs[max(0, len(logs)-80):], aclLog(t, admin))
	_, found, err := srv.Measurement(ctx, tenant, "acl-train")
	require.NoError(t, err)
	require.True(t, found, "the worker records the named job's measurement")

	// 2. A job cancelled by the server stops on the worker (cancel channel).
	ff := mkfifo(t, dir, "cancel")
	id2 := submit(greenq.SubmitRequest{Command: []string{"sh", "-c", `echo > "$0"; exec sleep 30`, ff}})
	readFifo(t, ff)
	_, err = srv.Cancel(ctx, tenant, id2)
	require.NoError(t, err)
	f = waitFinish(id2)
	require.Equal(t, greenq.StateCancelled, f.state)

	// 3. Stopping the worker pauses an interruptible job, which wakes the
	// planner (wake channel).
	ff = mkfifo(t, dir, "pause")
	id3 := submit(greenq.SubmitRequest{Interruptible: true,
		Command: []string{"sh", "-c", `trap 'exit 143' TERM; echo > "$0"; while :; do sleep 0.05; done`, ff}})
	readFifo(t, ff)
	wakes := admin.Subscribe(ctx, "greenq:wake")
	defer wakes.Close()
	_, err = wakes.Receive(ctx)
	require.NoError(t, err)
	stop()
	f = waitFinish(id3)
	require.NoError(t, f.err)
	require.Equal(t, greenq.StatePlanned, f.state)
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("worker.Run did not return")
	}
	select {
	case <-wakes.Channel():
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake published after the pause; ACL denials: %v", aclLog(t, admin))
	}
	require.Equal(t, greenq.StatePlanned, mustJob(t, srv, tenant, id3).State)

	// Everything above ran without a single refusal, including those whose
	// errors greenq or go-redis ignore.
	require.Empty(t, aclLog(t, admin), "the worker and server roles were refused commands they use")

	// What a worker never does is refused, and changes nothing.
	fence := admin.Get(ctx, "greenq:{greenq}:fence").Val()
	seriesKey := "greenq:{greenq}:series:" + region
	seriesBefore := admin.Get(ctx, seriesKey).Val()
	aclBefore := admin.Do(ctx, "ACL", "LIST").String()
	cases := [][]any{
		{"FLUSHALL"}, {"FLUSHDB"}, {"CONFIG", "GET", "*"}, {"CONFIG", "SET", "appendonly", "yes"},
		{"KEYS", "*"}, {"SCAN", "0"}, {"ACL", "LIST"}, {"ACL", "SETUSER", "greenq-worker", "+@all", "~*"},
		{"ACL", "LOAD"}, {"DEBUG", "SLEEP", "0"}, {"SHUTDOWN", "NOSAVE"}, {"MODULE", "LIST"},
		{"REPLICAOF", "127.0.0.1", "1"}, {"SWAPDB", "0", "1"}, {"SAVE"}, {"BGREWRITEAOF"},
		{"SCRIPT", "FLUSH"}, {"FUNCTION", "FLUSH"}, {"CLIENT", "LIST"}, {"CLIENT", "KILL", "TYPE", "normal"},
		{"MIGRATE", "127.0.0.1", "1", "greenq:{greenq}:job:" + id1, "0", "1000"},
		{"DUMP", "greenq:{greenq}:job:" + id1},
		// keys outside the worker's patterns
		{"SET", "other:key", "x"}, {"GET", "other:key"},
		{"SET", seriesKey, "{}"}, // forecasts are read-only
		{"SET", "greenq:{greenq}:lease:leader", "x"}, {"INCR", "greenq:{greenq}:fence"},
		{"ZRANGE", "greenq:{greenq}:jobs", "0", "-1"}, {"ZRANGE", "greenq:{greenq}:tenant:" + tenant, "0", "-1"},
		// channels outside its patterns
		{"PUBLISH", "other", "x"},
		// scripts run with the caller's ACL
		{"EVAL", "return redis.call('SET', 'other:key', 'x')", "0"},
		{"EVAL", "return redis.call('FLUSHALL')", "0"},
		{"EVAL", "return redis.call('INCR', KEYS[1])", "1", "greenq:{greenq}:fence"},
	}
	for _, c := range cases {
		err := workerRDB.Do(ctx, c...).Err()
		require.Error(t, err, "greenq-worker may run %v", c)
		require.Regexp(t, denied, err.Error(), "greenq-worker: %v", c)
		if c[0] != "EVAL" {
			require.True(t, strings.HasPrefix(err.Error(), "NOPERM "), "greenq-worker: %v: %v", c, err)
		}
	}
	require.NoError(t, admin.Ping(ctx).Err(), "redis-server must still run")
	require.Zero(t, admin.Exists(ctx, "other:key").Val(), "a refused write must not happen")
	require.Equal(t, fence, admin.Get(ctx, "greenq:{greenq}:fence").Val())
	require.Equal(t, seriesBefore, admin.Get(ctx, seriesKey).Val())
	require.Equal(t, aclBefore, admin.Do(ctx, "ACL", "LIST").String())
	require.Equal(t, "no", admin.ConfigGet(ctx, "appendonly").Val()["appendonly"])
	for _, id := range []string{id1, id2, id3} {
		mustJob(t, srv, tenant, id)
	}
	require.NotEmpty(t, aclLog(t, admin), "the refusals above are in the ACL log")

	// The server role keeps its data but has no admin commands either.
	for _, c := range [][]any{{"FLUSHALL"}, {"FLUSHDB"}, {"CONFIG", "GET", "*"}, {"KEYS", "*"}, {"ACL", "LIST"},
		{"DEBUG", "SLEEP", "0"}, {"SHUTDOWN", "NOSAVE"}, {"SCRIPT", "FLUSH"}, {"SET", "other:key", "x"}} {
		err := serverRDB.Do(ctx, c...).Err()
		require.Error(t, err, "greenq-server may run %v", c)
		require.True(t, strings.HasPrefix(err.Error(), "NOPERM "), "greenq-server: %v: %v", c, err)
	}
	require.NoError(t, admin.Ping(ctx).Err(), "redis-server must still run")
}

// aclLog returns the ACL log's entries as "user: reason object" lines.
func aclLog(t *testing.T, admin *redis.Client) []string {
	t.Helper()
	entries, err := admin.ACLLog(context.Background(), 100).Result()
	require.NoError(t, err)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = fmt.Sprintf("%s: %s %s (%s, x%d)", e.Username, e.Reason, e.Object, e.Context, e.Count)
	}
	return out
}

func mustJob(t *testing.T, s *queue.Store, tenant, id string) *greenq.Job {
	t.Helper()
	j, err := s.Get(context.Background(), tenant, id)
	require.NoError(t, err)
	return j
}

// mkfifo makes a named pipe a job writes to once it runs.
func mkfifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	return p
}

// readFifo waits until the job's process has opened and written p.
func readFifo(t *testing.T, p string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.Open(p) // blocks until the job opens it for writing
		if err == nil {
			_, err = io.ReadAll(f)
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		// Unblock the reader so the goroutine ends.
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("the job never wrote %s", p)
	}
}
