package stack

import (
	"context"
	"embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
	"github.com/greenq/greenq/worker"
)

//go:embed demo/*.csv
var demoData embed.FS

// DemoRegions are greenq dev's regions: real 2024 history (demo/README.md)
// replayed onto today's dates.
var DemoRegions = []greenq.Region{
	{Name: "uk-south", Zone: "GB", Provider: "file", PUE: 1.2, GPUPriceUSDPerHour: 1.277},
	{Name: "us-west", Zone: "US-CAL-CISO", Provider: "file", PUE: 1.15, GPUPriceUSDPerHour: 1.006},
	{Name: "ca-central", Zone: "CA-ON", Provider: "file", PUE: 1.2, GPUPriceUSDPerHour: 1.117},
}

// Dev is the whole stack in one process: an embedded Redis (unless
// Config names one), the server, and one worker per region.
type Dev struct {
	// Config is used as given when it has regions; otherwise the demo
	// regions, a 1-minute slot and a 30-second re-plan are filled in.
	Config config.Config
	// EmbeddedRedis starts miniredis instead of using Config.Redis.
	EmbeddedRedis bool
	Logger        *slog.Logger
	// Out receives the greeting with the API address and a first command.
	Out io.Writer
	// Listener, when set, replaces listening on Config.Listen.
	Listener net.Listener
	// Ready, when set, receives the API's address once it accepts requests.
	Ready func(addr string)
	// WorkerGPUs is each demo worker's GPU count. Default 2.
	WorkerGPUs int
}

// Run starts everything and serves until ctx ends.
func (d *Dev) Run(ctx context.Context) error {
	cfg := d.Config
	if len(cfg.Regions) == 0 {
		dir, err := os.MkdirTemp("", "greenq-demo-")
		if err != nil {
			return fmt.Errorf("write demo data: %w", err)
		}
		defer os.RemoveAll(dir)
		entries, _ := demoData.ReadDir("demo")
		for _, e := range entries {
			b, _ := demoData.ReadFile("demo/" + e.Name())
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				return fmt.Errorf("write demo data: %w", err)
			}
		}
		cfg.Regions = DemoRegions
		cfg.Providers.File = config.FileProvider{Dir: dir, Replay: true}
		cfg.Slot = config.Duration(time.Minute)
		cfg.Replan = "@every 30s"
		cfg.Refresh = "@every 10m"
	}
	if d.EmbeddedRedis {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer m.Close()
		cfg.Redis = "redis://" + m.Addr() + "/0"
		cfg.RedisCluster, cfg.RedisSentinel = nil, nil
		d.Logger.Info("embedded Redis (miniredis) started; state is lost at exit", "addr", m.Addr())
	}
	if d.WorkerGPUs == 0 {
		d.WorkerGPUs = 2
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg        sync.WaitGroup
		errs      = make(chan error, len(cfg.Regions)+1)
		gatherers prometheus.Gatherers
	)
	for _, r := range cfg.Regions {
		reg := prometheus.NewRegistry()
		gatherers = append(gatherers, reg)
		w := &Worker{
			Config:   cfg,
			Worker:   worker.Config{Region: r.Name, GPUs: d.WorkerGPUs, ID: "dev-" + r.Name, Grace: 5 * time.Second},
			Logger:   d.Logger,
			Registry: reg,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				errs <- fmt.Errorf("worker %s: %w", r.Name, err)
				cancel()
			}
		}()
	}
	srv := &Server{
		Config: cfg, Logger: d.Logger, Gatherers: gatherers, Listener: d.Listener,
		Ready: func(addr string) {
			if d.Out != nil {
				fmt.Fprint(d.Out, devBanner(addr))
			}
			if d.Ready != nil {
				d.Ready(addr)
			}
		},
	}
	err := srv.Run(ctx)
	cancel()
	wg.Wait()
	close(errs)
	if err != nil {
		return err
	}
	return <-errs
}

// defaultAPIAddr is where client commands look for the API when neither
// --api nor GREENQ_API_URL says otherwise.
const defaultAPIAddr = "127.0.0.1:8080"

// devBanner is greenq dev's greeting for the API at addr: where it is and
// commands to try, which say how to reach it when it is not where client
// commands look by default.
func devBanner(addr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
greenq dev is running: API and dashboard on http://%s
demo regions: uk-south (GB), us-west (California), ca-central (Ontario) — real 2024 carbon history replayed onto today's dates

Try, in another terminal:
`, addr)
	if addr != defaultAPIAddr {
		fmt.Fprintf(&b, "  export GREENQ_API_URL=http://%s   # the API is not on the default %s\n", addr, defaultAPIAddr)
	}
	b.WriteString(`  bin/greenq submit --deadline 3m --duration 20s -- sh -c 'echo hi'
  bin/greenq submit --deadline 24h --duration 2h --regions uk-south -- sh -c 'echo trained'
  bin/greenq plan
  bin/greenq forecast --region uk-south

`)
	return b.String()
}
