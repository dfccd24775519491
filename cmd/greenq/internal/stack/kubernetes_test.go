package stack

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

// --executor kubernetes: the worker's size is the largest GPU node, its
// concurrency the cluster's GPUs, its directories on the first writable
// volume, and the executor runs both kinds of job (it refuses those
// without an image itself).
func TestSetKubernetes(t *testing.T) {
	node := func(name string, gpus int64) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{kubernetes.GPUResource: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	}
	client := fake.NewClientset(node("a", 8), node("b", 4))
	kubeClientFor = func(string) (k8s.Interface, error) { return client, nil }
	t.Cleanup(func() { kubeClientFor = kubeClient })

	w := &Worker{Executor: "kubernetes", Logger: slog.New(slog.DiscardHandler), Kube: &Kube{Namespace: "greenq",
		Volumes: []kubernetes.Volume{{Claim: "ro", Path: "/ro", ReadOnly: true}, {Claim: "shared", Path: "/shared"}}}}
	var wc worker.Config
	require.NoError(t, w.setExecutor(context.Background(), &wc))
	ex, ok := wc.Executor.(*kubernetes.Executor)
	require.True(t, ok)
	defer ex.Close()
	require.Same(t, ex, wc.Containers)
	require.Equal(t, "greenq", ex.Namespace())
	require.Equal(t, kubernetes.DefaultSecretName, ex.SecretName())
	require.Equal(t, 8, wc.GPUs)
	require.Equal(t, 12, wc.Concurrency)
	require.Equal(t, filepath.Join("/shared", "run"), wc.RunRoot)
	require.Equal(t, filepath.Join("/shared", "work"), wc.WorkRoot)
	require.Equal(t, filepath.Join("/shared", "outputs"), wc.OutputRoot)
	require.Equal(t, filepath.Join("/shared", "checkpoints"), wc.CheckpointRoot)

	// What the operator sets stays.
	wc = worker.Config{GPUs: 2, Concurrency: 3, WorkRoot: "/mine"}
	require.NoError(t, w.setExecutor(context.Background(), &wc))
	defer wc.Executor.(*kubernetes.Executor).Close()
	require.Equal(t, 2, wc.GPUs)
	require.Equal(t, 3, wc.Concurrency)
	require.Equal(t, "/mine", wc.WorkRoot)

	w.Kube = nil
	err := w.setExecutor(context.Background(), &worker.Config{})
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "kube-namespace", ge.Field)
}

// Outside a pod and without a kubeconfig there is no cluster to talk to:
// the error names --kubeconfig. A kubeconfig that does not parse names it
// too.
func TestKubeClientNeedsAConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := kubeClient("")
	require.ErrorContains(t, err, "kubeconfig")
	bad := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(bad, []byte("not: [a kubeconfig"), 0o600))
	_, err = kubeClient(bad)
	require.ErrorContains(t, err, "kubeconfig")
}
