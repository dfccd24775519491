package cli

import (
	"github.com/spf13/cobra"
)

func newServer(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:     "server",
		Short:   "Run the API, planner, release loop and forecast refresh",
		Example: "  greenq server --config greenq.yaml\n  greenq server --listen 0.0.0.0:8080 --redis redis://redis:6379/0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("server: not wired yet")
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "API address (default from config, else 127.0.0.1:8080)")
	return cmd
}

func newWorker(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "worker --region R",
		Short:   "Run jobs released to one region on this machine's GPUs",
		Example: "  greenq worker --region eu-north --gpus 8",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("worker: not wired yet")
		},
	}
	return cmd
}

func newDev(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole stack in one process, with demo regions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("dev: not wired yet")
		},
	}
	return cmd
}

func newSimulate(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Back-test greenq on real carbon history and a workload",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("simulate: not wired yet")
		},
	}
	return cmd
}
