package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/stack"
	"github.com/greenq/greenq/worker"
)

func newServer(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API, planner, release loop and forecast refresh",
		Long: `Run greenq's server. Every replica serves the API; the one holding the
Redis leader lease also plans, releases jobs and refreshes forecasts.`,
		Example: "  greenq server --config greenq.yaml\n  greenq server --listen 0.0.0.0:8080 --redis redis://redis:6379/0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			srv := &stack.Server{Config: cfg, Logger: g.logger("server")}
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "API address (default from config, else 127.0.0.1:8080)")
	return cmd
}

func newWorker(g *globals) *cobra.Command {
	var (
		wc            worker.Config
		metricsListen string
		engine        string
		ex            executorFlags
	)
	cmd := &cobra.Command{
		Use:   "worker --region R",
		Short: "Run jobs released to one region on this machine's GPUs",
		Long: `Run jobs released to region R. The worker measures each job's GPU energy
with NVML (an estimate where no driver is present) and leaves a carbon
receipt on the job. SIGTERM stops taking jobs, lets running ones finish
within --grace and pauses interruptible ones at a checkpoint.`,
		Example: "  greenq worker --region eu-north --gpus 8\n  greenq worker --region us-west --gpus 1 --metrics-listen :9090",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wc.Region == "" {
				return greenq.Invalid("region", "is required: the region whose queue this worker serves")
			}
			if err := ex.check(cmd.Flags()); err != nil {
				return err
			}
			if (ex.name == executorSlurm || ex.name == executorKubernetes) && !cmd.Flags().Changed("gpus") {
				wc.GPUs = 0 // the cluster's largest node
			} else if wc.GPUs < 1 {
				return greenq.Invalid("gpus", "must be at least 1, got %d", wc.GPUs)
			}
			if wc.Concurrency < 0 {
				return greenq.Invalid("concurrency", "must not be negative")
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			w := &stack.Worker{Config: cfg, Worker: wc, MetricsListen: metricsListen, ContainerEngine: engine, Logger: g.logger("worker")}
			ex.apply(w)
			return w.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&wc.Region, "region", "", "region whose queue to serve (required)")
	f.IntVar(&wc.GPUs, "gpus", 1, "GPUs this machine offers (CUDA indices 0..N-1)")
	f.IntVar(&wc.Concurrency, "concurrency", 0, "most jobs at once (default: --gpus)")
	f.DurationVar(&wc.Grace, "grace", 30*time.Second, "on SIGTERM: time for running jobs to finish or checkpoint")
	f.StringVar(&wc.ID, "id", "", "worker name in heartbeats and receipts (default hostname-pid)")
	f.StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address")
	f.StringSliceVar(&wc.PassEnv, "pass-env", nil, "the worker's variables jobs also see (comma-separated; default from config worker.pass_env); nothing else of the worker's environment reaches a job")
	f.StringVar(&wc.SecretsDir, "secrets-dir", "", "one file per secret, as a Kubernetes Secret is mounted; jobs name the secrets they need (--secret K=NAME)")
	f.StringVar(&wc.WorkRoot, "work-root", "", "where a job without --workdir gets a fresh directory per run (default $TMPDIR/greenq-work)")
	f.StringVar(&wc.OutputRoot, "output-dir", "", "where each job's GREENQ_OUTPUT_DIR is made, kept after the job (default $TMPDIR/greenq-outputs)")
	f.StringVar(&wc.CheckpointRoot, "checkpoint-dir", "", "where interruptible jobs keep GREENQ_CHECKPOINT_DIR; shared storage every worker a job may move to can reach (default $TMPDIR/greenq-checkpoints)")
	f.StringVar(&engine, "container-engine", "", "podman or docker, for jobs with --image (default whichever is installed)")
	addRunAs(f, &wc)
	ex.flags(f)
	return cmd
}

func newDev(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole stack in one process, with demo regions",
		Long: `Run the API, planner, release loop and one worker per region in one
process, on an embedded Redis unless --redis names one. Without --config the
regions are demo regions replaying real 2024 carbon history onto today's
dates (labelled file:replay in their source).`,
		Example: "  greenq dev\n  greenq dev --redis redis://127.0.0.1:6379/0 --listen 127.0.0.1:9000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			embedded := g.env("GREENQ_REDIS_URL", g.redisURL) == "" && len(cfg.RedisCluster) == 0 && cfg.RedisSentinel == nil
			if g.env("GREENQ_CONFIG", g.configPath) != "" && cfg.Redis != "" && cfg.Redis != "redis://127.0.0.1:6379/0" {
				embedded = false
			}
			d := &stack.Dev{Config: cfg, EmbeddedRedis: embedded, Logger: g.logger("dev"), Out: g.stdout}
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "API address (default 127.0.0.1:8080)")
	return cmd
}
