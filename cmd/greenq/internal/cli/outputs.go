package cli

import (
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/jobfiles"
)

func newOutputs(g *globals) *cobra.Command {
	var download string
	cmd := &cobra.Command{
		Use:   "outputs ID",
		Short: "List the files a job left in its output directory, or fetch them",
		Long: `List the files a job wrote to GREENQ_OUTPUT_DIR, and where they are kept:
a directory on the region's shared storage or an object-store URL (the
workers' --output-dir). With --download DIR, copy them into DIR; this
machine must reach that storage (the same shared file system, or the
object store with its usual credentials, e.g. AWS_* for s3://).`,
		Example: "  greenq outputs 01JD…\n  greenq outputs 01JD… --download ./results",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			var j greenq.Job
			if err := g.client().do(cmd.Context(), "GET", "/v1/jobs/"+url.PathEscape(args[0]), nil, &j); err != nil {
				return err
			}
			if j.Outputs == nil {
				return greenq.Errorf(greenq.CodeNotFound, "job %s has no outputs yet (it is %s)", j.ID, j.State)
			}
			if download != "" {
				return fetchOutputs(cmd, j, download, g)
			}
			if g.output == "json" {
				return writeJSON(g.stdout, j.Outputs)
			}
			fmt.Fprintf(g.stdout, "%s  (%d files, %d bytes)\n", j.Outputs.Location, len(j.Outputs.Files), j.Outputs.Bytes)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			for _, f := range j.Outputs.Files {
				fmt.Fprintf(tw, "%d\t  %s\t\n", f.Bytes, f.Path)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&download, "download", "", "copy the outputs into this directory")
	outputFlag(cmd, g)
	return cmd
}

// fetchOutputs copies j's outputs from their location into dir.
func fetchOutputs(cmd *cobra.Command, j greenq.Job, dir string, g *globals) error {
	root, ok := jobfiles.Root(j.Outputs.Location, j.ID)
	if !ok {
		return fmt.Errorf("outputs of %s: %q does not end in the job's id", j.ID, j.Outputs.Location)
	}
	loc, err := jobfiles.Open(cmd.Context(), root)
	if err != nil {
		return greenq.Errorf(greenq.CodeUnavailable, "reach the outputs at %s from this machine: %v", j.Outputs.Location, err)
	}
	defer loc.Close()
	if err := loc.Fetch(cmd.Context(), j.ID, dir); err != nil {
		return greenq.Errorf(greenq.CodeUnavailable, "fetch the outputs from %s: %v", j.Outputs.Location, err)
	}
	fmt.Fprintf(g.stdout, "%d files (%d bytes) from %s in %s\n", len(j.Outputs.Files), j.Outputs.Bytes, j.Outputs.Location, dir)
	return nil
}
