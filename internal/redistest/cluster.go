package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster starts a Redis Cluster of three masters for t alone, stopped at
// cleanup, and returns their addresses once every node reports
// cluster_state:ok. It fails the test without redis-server or redis-cli
// (both from Debian's redis-server package).
func Cluster(t testing.TB) []string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli is not on PATH: install it (apt-get install redis-server) or run `make test`, which does")
	}
	var addrs []string
	for range 3 {
		conf := filepath.Join(os.TempDir(), Unique("greenq-test-nodes")+".conf")
		t.Cleanup(func() { _ = os.Remove(conf) })
		s := Private(t, "--cluster-enabled", "yes", "--cluster-config-file", conf, "--cluster-node-timeout", "5000")
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command(cli, append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	if err := awaitClusterOK(addrs, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return addrs
}

// awaitClusterOK polls every node (another process's state: there is no
// signal to await) until all report cluster_state:ok, so scripts on any
// slot succeed.
func awaitClusterOK(addrs []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if clusterOK(ctx, addrs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster %v not ok after %s", addrs, timeout)
		case <-tick.C:
		}
	}
}

func clusterOK(ctx context.Context, addrs []string) bool {
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.ClusterInfo(ctx).Result()
		_ = c.Close()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
	}
	return true
}
