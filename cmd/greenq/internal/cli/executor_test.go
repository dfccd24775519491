package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Bad executor flags are refused before anything starts: exit 2, naming
// the flag.
func TestWorkerExecutorFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--executor", "nomad"}, "executor"},
		{[]string{"--executor", "slurm"}, "slurm-partition"},
		{[]string{"--slurm-partition", "gpu"}, "slurm-partition"},
		{[]string{"--slurm-spool", "/shared/greenq"}, "slurm-spool"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--slurm-poll-interval", "0s"}, "slurm-poll-interval"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--container-engine", "podman"}, "container-engine"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--slurm-container-flag", "container-image"}, "slurm-container-flag"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time-margin", "-1m"}, "slurm-time-margin"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--slurm-sbatch-arg", "qos=low"}, "slurm-sbatch-arg"},
		{[]string{"--slurm-sbatch-arg", "--qos=low"}, "slurm-sbatch-arg"},
		{[]string{"--meter-api-url", "http://greenq:8080"}, "meter-api-url"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--meter-api-url", "greenq:8080"}, "meter-api-url"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--meter-api-url", "ftp://greenq/"}, "meter-api-url"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"worker", "--region", "eu"}, c.args...)
		code := Main(context.Background(), args, &stdout, &stderr)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr.String())
		require.Contains(t, stderr.String(), c.flag, c.args)
	}
}
