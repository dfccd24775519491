package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Bad Kubernetes executor flags are refused before anything starts:
// exit 2, naming the flag; outside a pod without --kubeconfig, so is the
// missing cluster.
func TestWorkerKubernetesFlags(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kube := []string{"--executor", "kubernetes", "--kube-namespace", "greenq"}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--executor", "kubernetes"}, "kube-namespace"},
		{[]string{"--kube-namespace", "greenq"}, "kube-namespace"},
		{[]string{"--executor", "slurm", "--slurm-partition", "gpu", "--kubeconfig", "/k"}, "kubeconfig"},
		{append(kube, "--kube-volume", "claim"), "kube-volume"},
		{append(kube, "--kube-volume", "claim:relative"), "kube-volume"},
		{append(kube, "--slurm-partition", "gpu"), "slurm-partition"},
		{append(kube, "--container-engine", "podman"), "container-engine"},
		{append(kube, "--secrets-dir", "/run/secrets"), "secrets-dir"},
		{[]string{"--kube-meter-image", "greenq-worker:1"}, "kube-meter-image"},
		{kube, "kubeconfig"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"worker", "--region", "eu"}, c.args...)
		code := Main(context.Background(), args, &stdout, &stderr)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr.String())
		require.Contains(t, stderr.String(), "--"+c.flag, c.args)
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), []string{"worker", "--help"}, &stdout, &stderr))
	for _, f := range kubeFlagNames {
		require.True(t, strings.Contains(stdout.String(), "--"+f), "--%s in greenq worker --help", f)
	}
}
