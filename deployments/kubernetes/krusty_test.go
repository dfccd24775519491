package kubernetes

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// typed returns the Go type a kind decodes into strictly; nil for the
// Prometheus Operator's ServiceMonitor (no Go module here; its fields are
// checked in ../kubernetes_test.go).
func typed(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return nil
	}
	return false
}

// build runs `kustomize build dir` and decodes every object strictly.
func build(t *testing.T, dir string) map[string]any {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	out := map[string]any{}
	for _, r := range rm.Resources() {
		data, err := r.MarshalJSON()
		require.NoError(t, err)
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		require.NoError(t, json.Unmarshal(data, &head))
		v := typed(head.APIVersion, head.Kind)
		id := head.Kind + "/" + r.GetName()
		switch v.(type) {
		case nil:
			out[id] = nil
			continue
		case bool:
			t.Fatalf("%s: %s %s has no Go type in this test; add one", dir, head.APIVersion, id)
		}
		require.NoError(t, sigsyaml.UnmarshalStrict(data, v), "%s: %s", dir, id)
		out[id] = v
	}
	return out
}

// Every kustomization builds with the real kustomize, into objects the
// Kubernetes API types decode strictly.
func TestKustomizeBuildsEveryKustomization(t *testing.T) {
	t.Parallel()
	var dirs []string
	require.NoError(t, filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return err
	}))
	require.Contains(t, dirs, "overlays/k8s-executor-eu-north")
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			require.NotEmpty(t, build(t, dir))
		})
	}
}

// The Kubernetes executor's overlay as kustomize builds it: the namespace
// lands on namespaced objects only, the bindings name the worker's account
// in it, and the worker mounts the ConfigMap under kustomize's hashed name.
func TestKubeExecutorOverlay(t *testing.T) {
	t.Parallel()
	objs := build(t, "overlays/k8s-executor-eu-north")
	role := objs["Role/greenq-kube-worker"].(*rbacv1.Role)
	require.Equal(t, "greenq", role.Namespace)
	cr := objs["ClusterRole/greenq-kube-worker-capacity"].(*rbacv1.ClusterRole)
	require.Empty(t, cr.Namespace)
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "greenq-kube-worker", Namespace: "greenq"}
	require.Equal(t, []rbacv1.Subject{sa}, objs["RoleBinding/greenq-kube-worker"].(*rbacv1.RoleBinding).Subjects)
	crb := objs["ClusterRoleBinding/greenq-kube-worker-capacity"].(*rbacv1.ClusterRoleBinding)
	require.Empty(t, crb.Namespace)
	require.Equal(t, []rbacv1.Subject{sa}, crb.Subjects)
	require.Contains(t, objs, "ServiceAccount/greenq-kube-worker")
	require.Equal(t, "greenq", objs["PersistentVolumeClaim/greenq-shared"].(*corev1.PersistentVolumeClaim).Namespace)

	d := objs["Deployment/greenq-worker"].(*appsv1.Deployment)
	ps := d.Spec.Template.Spec
	require.Equal(t, "greenq-kube-worker", ps.ServiceAccountName)
	require.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type)
	require.Nil(t, d.Spec.Strategy.RollingUpdate)
	require.Empty(t, ps.NodeSelector)
	require.Empty(t, ps.Tolerations)
	c := ps.Containers[0]
	require.Equal(t, "registry.example.com/greenq/worker:0.1.0", c.Image)
	require.Contains(t, c.Args, "--executor=kubernetes")
	require.Contains(t, c.Args, "--kube-namespace=greenq")
	_, gpu := c.Resources.Limits["nvidia.com/gpu"]
	require.False(t, gpu)
	var cm string
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil {
			cm = v.ConfigMap.Name
		}
	}
	require.True(t, strings.HasPrefix(cm, "greenq-config-"), "kustomize's hashed name: %s", cm)
	require.Contains(t, objs, "ConfigMap/"+cm)

	// What kustomize prints is what `kubectl apply -k` sends.
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "overlays/k8s-executor-eu-north")
	require.NoError(t, err)
	y, err := rm.AsYaml()
	require.NoError(t, err)
	require.True(t, bytes.Contains(y, []byte("kind: ClusterRoleBinding")))
}
