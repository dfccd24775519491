package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/internal/testenv"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// greenqBin is the binary TestMain builds.
var greenqBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "greenq-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	greenqBin = filepath.Join(dir, "greenq")
	if bin := os.Getenv("GREENQ_E2E_BIN"); bin != "" {
		// A binary built beforehand (make test builds bin/greenq).
		greenqBin = bin
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	gobin := "go"
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		gobin = p
	}
	build := exec.Command(gobin, "build", "-o", greenqBin, "github.com/greenq/greenq/cmd/greenq")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build greenq: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// needTool fails t under CI, and skips it elsewhere, when a program the
// test starts is not installed.
func needTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(t, fmt.Sprintf("%s is not installed (apt-get install %s, or run `make test`, which does): this end-to-end test runs real Redis processes", name, pkg))
	}
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every interval until it holds or timeout passes; used
// only where no signal can be awaited (another process's state).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- processes ----

// proc is a child process whose output goes to a file in the test's temp
// dir; it is stopped at cleanup and its log tail shown when the test fails.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	state  *os.ProcessState
}

func startProc(t testing.TB, name string, bin string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, bin, args...)
}

// startProcEnv is startProc with env (NAME=value) added to the child's
// environment.
func startProcEnv(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GREENQ_CONFIG=", "GREENQ_REDIS_URL=", "GREENQ_API_URL=", "GREENQ_TOKENS=")
	cmd.Env = append(cmd.Env, env...)
	require.NoError(t, cmd.Start(), "start %s", name)
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, tail(p.Log(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Log returns everything the process wrote so far.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Running reports whether the process has not exited.
func (p *proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *proc) Signal(sig syscall.Signal) {
	if p.Running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 when killed by a signal); ok is false on timeout.
func (p *proc) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.exited:
		return p.state.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) Stop(grace time.Duration) {
	if !p.Running() {
		return
	}
	p.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(grace); !ok {
		p.Kill()
	}
}

// ---- Redis ----

// redisServer is a redis-server child on a free loopback port with its own
// directory (AOF, cluster config, log).
type redisServer struct {
	t        testing.TB
	Port     int
	Dir      string
	Password string // from --requirepass, if given
	args     []string
	p        *proc
}

// startRedis starts redis-server with extra config directives (each as
// "--name value ...").
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	redistest.Binary(t)
	r := &redisServer{t: t, Port: freePort(t), Dir: t.TempDir()}
	r.args = append([]string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no"}, extra...)
	for i, a := range extra {
		if a == "--requirepass" && i+1 < len(extra) {
			r.Password = extra[i+1]
		}
	}
	r.Start()
	return r
}

// Start (re)starts the server on its port and directory, waiting until it
// answers PING (it may still be LOADING its data).
func (r *redisServer) Start() {
	r.t.Helper()
	r.p = startProc(r.t, fmt.Sprintf("redis-%d", r.Port), "redis-server", r.args...)
	c := r.Client()
	defer c.Close()
	waitFor(r.t, 10*time.Second, "redis-server to answer", func() bool {
		err := c.Ping(context.Background()).Err()
		return err == nil || strings.HasPrefix(errString(err), "LOADING")
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Shutdown stops the server the way an operator would (SHUTDOWN, which
// writes the AOF) and waits for the process to exit.
func (r *redisServer) Shutdown() {
	r.t.Helper()
	c := r.Client()
	_ = c.Shutdown(context.Background()).Err()
	c.Close()
	if _, ok := r.p.Wait(10 * time.Second); !ok {
		r.p.Kill()
	}
}

// Addr is host:port.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the redis:// URL of database 0.
func (r *redisServer) URL() string { return "redis://" + r.Addr() + "/0" }

// Client returns a go-redis client to the server; the caller closes it.
func (r *redisServer) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, MaxRetries: -1, DialTimeout: time.Second})
}

// startCluster starts three cluster-enabled masters and joins them with
// redis-cli --cluster create; it returns their addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	needTool(t, "redis-cli", "redis-tools")
	var addrs []string
	for range 3 {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--appendonly", "no")
		addrs = append(addrs, r.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	waitFor(t, 20*time.Second, "the cluster to cover every slot", func() bool {
		info, err := cc.ClusterInfo(context.Background()).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		// Every node must agree before scripts on any slot succeed.
		ok := true
		_ = cc.ForEachShard(context.Background(), func(ctx context.Context, c *redis.Client) error {
			s, err := c.ClusterInfo(ctx).Result()
			ok = ok && err == nil && strings.Contains(s, "cluster_state:ok")
			return nil
		})
		return ok
	})
	return addrs
}

// startSentinel starts a master and one sentinel monitoring it as master
// name "m"; it returns the sentinel's address.
func startSentinel(t *testing.T) (master *redisServer, sentinelAddr string) {
	t.Helper()
	needTool(t, "redis-sentinel", "redis-sentinel")
	master = startRedis(t, "--appendonly", "no")
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil,
		"port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 %d 1\nsentinel down-after-milliseconds m 5000\n",
		port, dir, master.Port), 0o644))
	startProc(t, fmt.Sprintf("sentinel-%d", port), "redis-sentinel", conf)
	sentinelAddr = "127.0.0.1:" + strconv.Itoa(port)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinelAddr})
	defer sc.Close()
	waitFor(t, 10*time.Second, "sentinel to know master m", func() bool {
		addr, err := sc.GetMasterAddrByName(context.Background(), "m").Result()
		return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.Port)
	})
	return master, sentinelAddr
}

// ---- series ----

// seriesRow is one row of a testdata CSV.
type seriesRow struct {
	Orig  string // original timestamp
	Value float64
	Text  string // the value as written
}

// loadRows reads testdata/<zone>.csv.
func loadRows(t testing.TB, zone string) []seriesRow {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", zone+".csv"))
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	var out []seriesRow
	for _, r := range recs[1:] {
		v, err := strconv.ParseFloat(r[1], 64)
		require.NoError(t, err)
		out = append(out, seriesRow{Orig: r[0], Value: v, Text: r[1]})
	}
	return out
}

// writeSeries writes <zone>.csv into dir with the testdata values of zone
// and row i starting at base + i×step, and returns the values.
func writeSeries(t testing.TB, dir string, base time.Time, step time.Duration, zones ...string) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for _, z := range zones {
		rows := loadRows(t, z)
		var b bytes.Buffer
		b.WriteString("time_utc,gco2_per_kwh\n")
		for i, r := range rows {
			fmt.Fprintf(&b, "%s,%s\n", base.Add(time.Duration(i)*step).UTC().Format(time.RFC3339), r.Text)
			out[z] = append(out[z], r.Value)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, z+".csv"), b.Bytes(), 0o644))
	}
	return out
}

// ---- config and the greenq processes ----

// region is one configured region.
type region struct {
	Name, Zone, Provider string
}

// stackConfig is what a test's greenq.yaml says.
type stackConfig struct {
	Redis    string   // redis:// URL, or
	Cluster  []string // Redis Cluster seeds, or
	Sentinel string   // a sentinel address for master "m"
	Regions  []region
	FileDir  string
	Replan   string // default "@every 2s"
	UKCIURL  string
	CAURL    string
}

// writeConfig writes c as greenq.yaml in a temp dir and returns its path.
func writeConfig(t testing.TB, c stackConfig) string {
	t.Helper()
	var b strings.Builder
	switch {
	case len(c.Cluster) > 0:
		fmt.Fprintf(&b, "redis_cluster: [%s]\n", strings.Join(c.Cluster, ", "))
	case c.Sentinel != "":
		fmt.Fprintf(&b, "redis_sentinel: {master: m, addrs: [%s]}\n", c.Sentinel)
	default:
		fmt.Fprintf(&b, "redis: %s\n", c.Redis)
	}
	if c.Replan == "" {
		c.Replan = "@every 2s"
	}
	fmt.Fprintf(&b, "slot: 1s\nreplan: %q\nrefresh: \"@every 1s\"\nregions:\n", c.Replan)
	for _, r := range c.Regions {
		p := r.Provider
		if p == "" {
			p = "file"
		}
		fmt.Fprintf(&b, "  - {name: %s, zone: %s, provider: %s, pue: 1, gpu_price_usd_per_hour: 1}\n", r.Name, r.Zone, p)
	}
	b.WriteString("providers:\n")
	if c.FileDir != "" {
		fmt.Fprintf(&b, "  file: {dir: %q}\n", c.FileDir)
	}
	if c.UKCIURL != "" {
		fmt.Fprintf(&b, "  ukci: {base_url: %q}\n", c.UKCIURL)
	}
	if c.CAURL != "" {
		fmt.Fprintf(&b, "  carbonaware: {base_url: %q}\n", c.CAURL)
	}
	path := filepath.Join(t.TempDir(), "greenq.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// server is a running `greenq server`.
type server struct {
	*proc
	URL string
	API *apiClient
}

// startServer runs `greenq server` on a free port and waits for /healthz.
func startServer(t testing.TB, name, cfgPath string) *server {
	t.Helper()
	port := freePort(t)
	p := startProc(t, name, greenqBin, "server", "--config", cfgPath, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	s := &server{proc: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.API = newAPI(s.URL)
	waitFor(t, 15*time.Second, name+" to serve /healthz", func() bool {
		require.True(t, p.Running(), "%s exited:\n%s", name, tail(p.Log(), 3000))
		st, _, err := s.API.do("GET", "/healthz", nil)
		return err == nil && st == 200
	})
	return s
}

// IsLeader reports whether the server's log says it leads.
func (s *server) IsLeader() bool { return strings.Contains(s.Log(), "leading: planning") }

// startWorker runs `greenq worker` for region with gpus GPUs.
func startWorker(t testing.TB, id, cfgPath, region string, gpus int, extra ...string) *proc {
	t.Helper()
	args := append([]string{"worker", "--config", cfgPath, "--region", region, "--gpus", strconv.Itoa(gpus),
		"--id", id, "--grace", "10s"}, extra...)
	return startProc(t, id, greenqBin, args...)
}

// cli runs the greenq binary with args and returns its exit status, stdout
// and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, greenqBin, args...)
	cmd.Env = append(os.Environ(), "GREENQ_CONFIG=", "GREENQ_REDIS_URL=", "GREENQ_API_URL=", "GREENQ_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run greenq %v: %v", args, err)
	return 0, "", ""
}

// regionQueue is the asynq queue of a region's 1-GPU jobs
// (queue.RegionQueue; spelled out so these tests build against the binary's
// contract, not its code).
func regionQueue(region string) string { return "region:" + region }

// sizeQueue is the asynq queue of a region's jobs of gpus GPUs
// (queue.SizeQueue): the region queue for one GPU, "region:R:gpus=N" for
// more.
func sizeQueue(region string, gpus int) string {
	if gpus <= 1 {
		return regionQueue(region)
	}
	return regionQueue(region) + ":gpus=" + strconv.Itoa(gpus)
}

// regionQueues lists the asynq queues of region's jobs of every size that
// exist.
func regionQueues(t *testing.T, insp *asynq.Inspector, region string) []string {
	t.Helper()
	all, err := insp.Queues()
	require.NoError(t, err)
	var out []string
	for _, q := range all {
		if q == regionQueue(region) || strings.HasPrefix(q, regionQueue(region)+":gpus=") {
			out = append(out, q)
		}
	}
	return out
}

// asynqOpt returns asynq's connection options for the topology.
func (tp topology) asynqOpt() asynq.RedisConnOpt {
	switch {
	case len(tp.Cluster) > 0:
		return asynq.RedisClusterClientOpt{Addrs: tp.Cluster}
	case tp.Sentinel != "":
		return asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{tp.Sentinel}}
	}
	opt, err := redis.ParseURL(tp.Redis)
	if err != nil {
		panic(err)
	}
	return asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB}
}

// requireProcessed checks that each region's asynq queues processed exactly
// the given number of tasks: one per job, none released or run twice.
func requireProcessed(t *testing.T, tp topology, want map[string]int) {
	t.Helper()
	insp := asynq.NewInspector(tp.asynqOpt())
	defer insp.Close()
	for region, n := range want {
		var got int
		// asynq counts a task once its handler has returned, just after the
		// job's record says it finished.
		waitFor(t, 10*time.Second, fmt.Sprintf("queues of %s to count %d processed tasks", region, n), func() bool {
			got = 0
			for _, q := range regionQueues(t, insp, region) {
				if info, err := insp.GetQueueInfo(q); err == nil {
					got += info.ProcessedTotal
				}
			}
			return got >= n
		})
		require.Equal(t, n, got, "tasks processed on %s's queues", region)
	}
}

// requireOneTaskPerJob checks the completed tasks asynq keeps on region's
// queues (greenq's releaser retains them): ids are "<job id>:<release>",
// and each of the jobs released there has exactly one.
func requireOneTaskPerJob(t *testing.T, tp topology, region string, jobs int) {
	t.Helper()
	insp := asynq.NewInspector(tp.asynqOpt())
	defer insp.Close()
	var tasks []*asynq.TaskInfo
	for _, q := range regionQueues(t, insp, region) {
		ts, err := insp.ListCompletedTasks(q, asynq.PageSize(jobs+100))
		require.NoError(t, err)
		tasks = append(tasks, ts...)
	}
	perJob := map[string][]string{}
	for _, ti := range tasks {
		id, rel, ok := strings.Cut(ti.ID, ":")
		require.True(t, ok, "task id %q is <job id>:<release>", ti.ID)
		require.Equal(t, "1", rel, "task %s: job %s released more than once", ti.ID, id)
		perJob[id] = append(perJob[id], ti.ID)
	}
	for id, ts := range perJob {
		require.Len(t, ts, 1, "job %s has tasks %v", id, ts)
	}
	require.Len(t, perJob, jobs, "one completed task per job on %s", region)
}
