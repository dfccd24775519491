package deployments

// The Kubernetes executor's deployment: its worker and its RBAC, checked
// field by field and against every call the executor makes on a fake API
// server. (kubernetes/krusty_test.go builds the overlays with the real
// kustomize.)

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

const kubeOverlay = "kubernetes/overlays/k8s-executor-eu-north"

// kubeRole is what the executor's worker may do in its namespace.
var kubeRole = []rbacv1.PolicyRule{
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "delete", "list", "patch", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
}

// kubeClusterRole is what it may read cluster-wide (GPU capacity).
var kubeClusterRole = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: []string{"list"}},
}

// checkKubeWorker checks a worker pool that runs jobs as Kubernetes Jobs:
// its command line, its ServiceAccount and RBAC, its shared claim.
func checkKubeWorker(t *testing.T, b built, ov overlay, cfg greenqConfig) {
	t.Helper()
	d := b.deployment(t, "greenq-worker")
	where := b.dir + " Deployment/greenq-worker"
	ns := b.namespaces[0].Name
	ps := d.Spec.Template.Spec
	require.Len(t, ps.Containers, 1)
	c := ps.Containers[0]
	pc := checkCommandLine(t, greenqContainer(t, where, c))
	require.Equal(t, "worker", pc.cmd)
	require.Equal(t, ov.region, pc.flags["region"], where)
	require.Contains(t, cfg.regionNames(), pc.flags["region"], where)
	require.Equal(t, "kubernetes", pc.flags["executor"], where)
	require.Equal(t, ns, pc.flags["kube-namespace"], "%s: jobs run where the Role is granted", where)
	require.NotContains(t, pc.flags, "gpus", "%s: the cluster's largest node sizes the worker", where)
	require.Equal(t, "greenq-job-secrets", pc.flags["kube-secret"], "%s: jobs' secrets stay apart from greenq's own", where)
	require.Equal(t, c.Image, pc.flags["kube-meter-image"], "%s: jobs' pods get greenq meter from the worker's own image", where)
	require.Equal(t, fmt.Sprintf("http://greenq-server.%s.svc:8080", ns), pc.flags["meter-api-url"],
		"%s: greenq meter posts readings to the API server's Service", where)

	require.EqualValues(t, 1, *d.Spec.Replicas, "%s: one worker per cluster", where)
	require.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type, "%s: never two workers at once", where)
	require.Nil(t, d.Spec.Strategy.RollingUpdate, where)
	_, gpu := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
	require.False(t, gpu, "%s: the worker holds no GPU; its jobs do", where)
	require.Empty(t, ps.NodeSelector, where)
	require.Empty(t, ps.Tolerations, where)
	require.Nil(t, ps.Affinity, where)
	grace, err := time.ParseDuration(pc.flags["grace"])
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Duration(*ps.TerminationGracePeriodSeconds)*time.Second, grace+10*time.Second, where)

	// Its ServiceAccount, with the token in this pod only.
	require.Equal(t, "greenq-kube-worker", ps.ServiceAccountName, where)
	require.Equal(t, ptrTo(true), ps.AutomountServiceAccountToken, where)
	var sa *corev1.ServiceAccount
	for i := range b.serviceAccounts {
		if b.serviceAccounts[i].Name == ps.ServiceAccountName {
			sa = &b.serviceAccounts[i]
		}
	}
	require.NotNil(t, sa, "%s: ServiceAccount %s", b.dir, ps.ServiceAccountName)
	require.Equal(t, ptrTo(false), sa.AutomountServiceAccountToken, "no other pod of the account gets its token")
	checkKubeRBAC(t, b, ns, sa.Name)

	// The shared claim: mounted by the worker where its jobs mount it.
	vol, err := kubernetes.ParseVolume(pc.flags["kube-volume"])
	require.NoError(t, err, where)
	require.False(t, vol.ReadOnly, where)
	var claim *corev1.PersistentVolumeClaim
	for i := range b.claims {
		if b.claims[i].Name == vol.Claim {
			claim = &b.claims[i]
		}
	}
	require.NotNil(t, claim, "%s: --kube-volume names claim %s, which the overlay does not make", where, vol.Claim)
	require.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, claim.Spec.AccessModes,
		"the worker and job pods on any node share it")
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == vol.Claim {
				require.Equal(t, vol.Path, m.MountPath, "%s: the worker mounts %s where the jobs do", where, vol.Claim)
				require.False(t, m.ReadOnly, where)
				mounted = true
			}
		}
	}
	require.True(t, mounted, "%s: the worker does not mount claim %s", where, vol.Claim)
}

// checkKubeRBAC checks the executor's Role, ClusterRole and bindings field
// by field.
func checkKubeRBAC(t *testing.T, b built, ns, account string) {
	t.Helper()
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: account, Namespace: ns}}
	require.Len(t, b.roles, 1, b.dir)
	role := b.roles[0]
	require.Equal(t, "greenq-kube-worker", role.Name)
	require.Equal(t, ns, role.Namespace)
	require.Equal(t, kubeRole, role.Rules)
	require.Len(t, b.roleBindings, 1, b.dir)
	rb := b.roleBindings[0]
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}, rb.RoleRef)
	require.Equal(t, subject, rb.Subjects)

	require.Len(t, b.clusterRoles, 1, b.dir)
	cr := b.clusterRoles[0]
	require.Equal(t, "greenq-kube-worker-capacity", cr.Name)
	require.Empty(t, cr.Namespace)
	require.Equal(t, kubeClusterRole, cr.Rules)
	require.Nil(t, cr.AggregationRule)
	require.Len(t, b.clusterRoleBindings, 1, b.dir)
	crb := b.clusterRoleBindings[0]
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}, crb.RoleRef)
	require.Equal(t, subject, crb.Subjects)

	for _, rules := range [][]rbacv1.PolicyRule{role.Rules, cr.Rules} {
		for _, r := range rules {
			require.NotContains(t, r.Resources, "secrets", "the worker never reads a Secret")
			require.NotContains(t, r.Resources, "pods/exec")
			require.NotContains(t, r.Verbs, "*")
			require.NotContains(t, r.Resources, "*")
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// call is one API request, as RBAC sees it.
type call struct {
	verb, group, resource, namespace string
}

func (c call) String() string {
	return fmt.Sprintf("%s %s/%s in %q", c.verb, c.group, c.resource, c.namespace)
}

// allows reports whether rules permit c.
func allows(rules []rbacv1.PolicyRule, c call) (int, bool) {
	for i, r := range rules {
		if slices.Contains(r.APIGroups, c.group) && slices.Contains(r.Resources, c.resource) && slices.Contains(r.Verbs, c.verb) {
			return i, true
		}
	}
	return -1, false
}

// TestKubeRBACCoversTheExecutor runs the executor through a whole run
// (create, watch, log, pause, stop, kill, clean-up) and a capacity read on
// a fake API server, and checks every request against the overlay's
// Role (in the namespace) and ClusterRole (anywhere), and that every verb
// granted is used.
func TestKubeRBACCoversTheExecutor(t *testing.T) {
	t.Parallel()
	b := buildTyped(t, kubeOverlay)
	require.Len(t, b.roles, 1)
	require.Len(t, b.clusterRoles, 1)
	ns := b.roles[0].Namespace

	gpus := *resource.NewQuantity(4, resource.DecimalSI)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gpu-1"}, Status: corev1.NodeStatus{
		Allocatable: corev1.ResourceList{kubernetes.GPUResource: gpus},
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	client := fake.NewClientset(node)
	ctx := context.Background()
	e, err := kubernetes.New(ctx, kubernetes.Config{Client: client, Namespace: ns, LogDrain: time.Second})
	require.NoError(t, err)
	defer e.Close()
	p, err := e.Start(ctx, executor.Spec{JobID: "rbac", Image: "x", Argv: []string{"true"}, GPUCount: 1,
		Secrets: map[string]string{"HF_TOKEN": "hf-token"}})
	require.NoError(t, err)
	jobs, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, jobs.Items, 1)
	j := jobs.Items[0]
	// The Job controller's pod, running.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x", Namespace: ns, Labels: j.Spec.Template.Labels},
		Spec: corev1.PodSpec{NodeName: "gpu-1", Containers: j.Spec.Template.Spec.Containers},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: kubernetes.ContainerName,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	_, err = client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, a := range client.Actions() {
			if a.GetSubresource() == "log" {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the executor follows the pod's log")
	_, err = e.GPUCapacity(ctx)
	require.NoError(t, err)
	require.NoError(t, p.(executor.Pauser).Pause())
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.NoError(t, p.Signal(syscall.SIGKILL))
	_ = p.Wait()

	used := map[string]bool{}
	for _, a := range client.Actions() {
		c := call{verb: a.GetVerb(), group: a.GetResource().Group, resource: a.GetResource().Resource, namespace: a.GetNamespace()}
		if sub := a.GetSubresource(); sub != "" {
			c.resource += "/" + sub
		}
		if c.verb == "create" && c.resource == "pods" {
			continue // the test's own stand-in for the Job controller
		}
		ok := false
		if c.namespace == ns {
			if i, in := allows(b.roles[0].Rules, c); in {
				used[fmt.Sprint("role", i, c.verb)], ok = true, true
			}
		}
		if i, in := allows(b.clusterRoles[0].Rules, c); in {
			used[fmt.Sprint("cluster", i, c.verb)], ok = true, true
		}
		require.True(t, ok, "the executor makes a request its RBAC refuses: %s", c)
	}
	for i, r := range b.roles[0].Rules {
		for _, v := range r.Verbs {
			require.True(t, used[fmt.Sprint("role", i, v)], "the Role grants %s on %v, which the executor never does", v, r.Resources)
		}
	}
	for i, r := range b.clusterRoles[0].Rules {
		for _, v := range r.Verbs {
			require.True(t, used[fmt.Sprint("cluster", i, v)], "the ClusterRole grants %s on %v, which the executor never does", v, r.Resources)
		}
	}
}
