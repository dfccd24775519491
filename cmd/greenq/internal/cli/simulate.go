package cli

import "github.com/spf13/cobra"

func newSimulate(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "simulate",
		Short: "Back-test greenq on real carbon history and a workload",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("simulate: not wired yet")
		},
	}
}
