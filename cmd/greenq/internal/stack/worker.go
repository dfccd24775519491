package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor/container"
	"github.com/greenq/greenq/worker/executor/slurm"
)

// Worker is a worker process: it serves one region's queue with this
// machine's GPUs and, when MetricsListen is set, /metrics.
type Worker struct {
	Config        config.Config
	Worker        worker.Config
	MetricsListen string
	// ContainerEngine is podman or docker for jobs with an image; default
	// whichever is installed (none: such jobs fail, saying why).
	ContainerEngine string
	// Executor names what runs jobs: "process" (the default) or "slurm"
	// (Slurm is then its configuration).
	Executor string
	// Slurm configures the Slurm executor; its Logger is set here.
	Slurm *slurm.Config
	// SlurmMeter is the greenq binary, as Slurm's nodes see it, that wraps
	// each command (greenq meter); "" means this binary, "none" none.
	SlurmMeter string
	// Kube configures the Kubernetes executor (Executor "kubernetes").
	Kube     *Kube
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// Run serves until ctx ends, then stops gracefully (see worker.Worker.Run).
func (w *Worker) Run(ctx context.Context) error {
	if w.Worker.Region == "" {
		return greenq.Invalid("region", "is required: the region whose queue this worker serves")
	}
	known := false
	for _, r := range w.Config.Regions {
		known = known || r.Name == w.Worker.Region
	}
	if len(w.Config.Regions) > 0 && !known {
		return greenq.Invalid("region", "%q is not in the config's regions (%v)", w.Worker.Region, w.Config.RegionNames())
	}
	rdb, aopt, err := Connect(w.Config)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := queue.NewStore(rdb, queue.Config{Regions: w.Config.Regions, Logger: w.Logger, LogBytes: w.Config.Worker.LogBytes})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if w.Registry == nil {
		w.Registry = newRegistry()
	}
	wc := w.Worker
	wc.Logger, wc.Registerer = w.Logger, w.Registry
	if wc.PUE == nil {
		wc.PUE = map[string]float64{}
		for _, r := range w.Config.Regions {
			wc.PUE[r.Name] = r.PUE
		}
	}
	if wc.DefaultPowerW == 0 {
		wc.DefaultPowerW = w.Config.Worker.PowerW
	}
	if wc.EmbodiedGCO2PerGPUHour == 0 {
		wc.EmbodiedGCO2PerGPUHour = w.Config.Worker.EmbodiedGCO2PerGPUHour
	}
	if wc.PassEnv == nil {
		wc.PassEnv = w.Config.Worker.PassEnv
	}
	if err := w.setExecutor(ctx, &wc); err != nil {
		return err
	}
	if c, ok := wc.Executor.(io.Closer); ok {
		defer c.Close() // after the last job has drained
	}
	if wc.Containers == nil {
		ce, err := container.New(container.Config{Engine: w.ContainerEngine, Logger: w.Logger})
		switch {
		case err == nil:
			wc.Containers = ce
		case w.ContainerEngine != "":
			return greenq.Invalid("container-engine", "%v", err)
		default:
			w.Logger.Info("jobs with an image will fail on this worker", "reason", err)
		}
	}
	if wc.LogBytes == 0 {
		wc.LogBytes = w.Config.Worker.LogBytes
	}
	wk, err := worker.New(wc, store, aopt)
	if err != nil {
		return err
	}
	if w.MetricsListen != "" {
		ln, err := net.Listen("tcp", w.MetricsListen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", w.MetricsListen, err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(w.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.Logger.Error("serve metrics", "err", err)
			}
		}()
		defer srv.Close()
	}
	return wk.Run(ctx)
}
