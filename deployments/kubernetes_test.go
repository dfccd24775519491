package deployments

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the Prometheus Operator's
// monitoring.coreos.com/v1 ServiceMonitor that the manifests use; decoded
// strictly like the core types (the operator's Go module is not worth its
// dependencies here).
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// built is one overlay, built and decoded into typed objects.
type built struct {
	dir             string
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	pdbs            []policyv1.PodDisruptionBudget
	monitors        []serviceMonitor
	claims          []corev1.PersistentVolumeClaim
	roles           []rbacv1.Role
	roleBindings    []rbacv1.RoleBinding
	// Cluster-scoped: no namespace.
	clusterRoles        []rbacv1.ClusterRole
	clusterRoleBindings []rbacv1.ClusterRoleBinding
}

// decodeStrict decodes o into v, failing on any field v does not know.
func decodeStrict(o object, v any) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode %s: %w", o.id(), err)
	}
	if err := sigsyaml.UnmarshalStrict(data, v); err != nil {
		return fmt.Errorf("decode %s strictly: %w", o.id(), err)
	}
	return nil
}

// buildTyped builds the kustomization in dir and decodes every object
// strictly into its Kubernetes type.
func buildTyped(t *testing.T, dir string) built {
	t.Helper()
	objs, err := kustomizeBuild(dir)
	require.NoError(t, err)
	b := built{dir: dir}
	for _, o := range objs {
		switch o.apiVersion() + " " + o.kind() {
		case "v1 Namespace":
			b.namespaces = append(b.namespaces, decodeAs[corev1.Namespace](t, o))
		case "v1 ServiceAccount":
			b.serviceAccounts = append(b.serviceAccounts, decodeAs[corev1.ServiceAccount](t, o))
		case "apps/v1 Deployment":
			b.deployments = append(b.deployments, decodeAs[appsv1.Deployment](t, o))
		case "apps/v1 StatefulSet":
			b.statefulSets = append(b.statefulSets, decodeAs[appsv1.StatefulSet](t, o))
		case "v1 Service":
			b.services = append(b.services, decodeAs[corev1.Service](t, o))
		case "v1 ConfigMap":
			b.configMaps = append(b.configMaps, decodeAs[corev1.ConfigMap](t, o))
		case "policy/v1 PodDisruptionBudget":
			b.pdbs = append(b.pdbs, decodeAs[policyv1.PodDisruptionBudget](t, o))
		case "monitoring.coreos.com/v1 ServiceMonitor":
			b.monitors = append(b.monitors, decodeAs[serviceMonitor](t, o))
		case "v1 PersistentVolumeClaim":
			b.claims = append(b.claims, decodeAs[corev1.PersistentVolumeClaim](t, o))
		case "rbac.authorization.k8s.io/v1 Role":
			b.roles = append(b.roles, decodeAs[rbacv1.Role](t, o))
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			b.roleBindings = append(b.roleBindings, decodeAs[rbacv1.RoleBinding](t, o))
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			b.clusterRoles = append(b.clusterRoles, decodeAs[rbacv1.ClusterRole](t, o))
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			b.clusterRoleBindings = append(b.clusterRoleBindings, decodeAs[rbacv1.ClusterRoleBinding](t, o))
		default:
			t.Fatalf("%s: %s has no Go type in this test; add one", dir, o.id())
		}
	}
	return b
}

func decodeAs[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	require.NoError(t, decodeStrict(o, &v))
	return v
}

// podTemplate is a workload's name and pod template.
type podTemplate struct {
	kind, name string
	template   corev1.PodTemplateSpec
	selector   *metav1.LabelSelector
	claims     []string // volumeClaimTemplates, usable as volumes
}

func (b built) workloads() []podTemplate {
	var out []podTemplate
	for _, d := range b.deployments {
		out = append(out, podTemplate{kind: "Deployment", name: d.Name, template: d.Spec.Template, selector: d.Spec.Selector})
	}
	for _, s := range b.statefulSets {
		pt := podTemplate{kind: "StatefulSet", name: s.Name, template: s.Spec.Template, selector: s.Spec.Selector}
		for _, c := range s.Spec.VolumeClaimTemplates {
			pt.claims = append(pt.claims, c.Name)
		}
		out = append(out, pt)
	}
	return out
}

func (b built) deployment(t *testing.T, name string) appsv1.Deployment {
	t.Helper()
	for _, d := range b.deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("%s: no Deployment %s", b.dir, name)
	return appsv1.Deployment{}
}

// overlay describes what each overlay must contain.
type overlay struct {
	dir        string
	server     bool   // runs the API server
	redis      bool   // runs the in-cluster Redis
	region     string // the worker pool's greenq region
	anyGPUNode bool   // the pool may land on any GPU node (no region selector)
	// kubeExecutor: the worker runs jobs as Kubernetes Jobs
	// (--executor kubernetes) and holds no GPU itself.
	kubeExecutor bool
}

var overlays = []overlay{
	{dir: "kubernetes/overlays/eu-north", server: true, region: "eu-north"},
	{dir: "kubernetes/overlays/us-west", region: "us-west"},
	{dir: "kubernetes/overlays/single-node", server: true, redis: true, region: "eu-north", anyGPUNode: true},
	{dir: "kubernetes/overlays/k8s-executor-eu-north", server: true, region: "eu-north", kubeExecutor: true},
}

// kubernetesDirs lists every directory holding a kustomization.
func kubernetesDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("kubernetes", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return err
	})
	require.NoError(t, err)
	return dirs
}

func TestOverlaysCovered(t *testing.T) {
	t.Parallel()
	var want []string
	for _, o := range overlays {
		want = append(want, o.dir)
	}
	for _, d := range kubernetesDirs(t) {
		if strings.HasPrefix(d, "kubernetes/overlays/") {
			require.Contains(t, want, d, "overlay %s is not in the test's overlays table", d)
		}
	}
}

// TestKustomizationsBuildStrictly builds every kustomization (base, redis
// and overlays) and decodes every object strictly; every YAML file under
// kubernetes/ must be used by some kustomization (or be an example).
func TestKustomizationsBuildStrictly(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, dir := range kubernetesDirs(t) {
		t.Run(dir, func(t *testing.T) {
			buildTyped(t, dir)
		})
		k, err := readKustomization(dir)
		require.NoError(t, err)
		used[filepath.Join(dir, "kustomization.yaml")] = true
		for _, f := range kustomizationFiles(k) {
			used[filepath.Join(dir, f)] = true
		}
	}
	err := filepath.WalkDir("kubernetes", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".example.yaml") {
			return err
		}
		require.True(t, used[p], "%s is referenced by no kustomization", p)
		return nil
	})
	require.NoError(t, err)
}

func TestOverlays(t *testing.T) {
	t.Parallel()
	secretKeys := exampleSecretKeys(t)
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			t.Parallel()
			b := buildTyped(t, ov.dir)
			cfg := configOf(t, b)
			require.Len(t, b.namespaces, 1)
			ns := b.namespaces[0].Name
			configMaps := map[string]bool{}
			for _, cm := range b.configMaps {
				configMaps[cm.Name] = true
			}
			var podLabels []labels.Set
			for _, w := range b.workloads() {
				where := ov.dir + " " + w.kind + "/" + w.name
				sel, err := metav1.LabelSelectorAsSelector(w.selector)
				require.NoError(t, err, where)
				require.True(t, sel.Matches(labels.Set(w.template.Labels)), "%s: selector does not match its pod template", where)
				podLabels = append(podLabels, w.template.Labels)
				checkPodSpec(t, where, w.template.Spec, w.claims, configMaps, secretKeys)
			}
			for _, o := range b.objectMetas() {
				if o.Name != ns {
					require.Equal(t, ns, o.Namespace, "%s: %s is outside namespace %s", ov.dir, o.Name, ns)
				}
			}
			for _, o := range b.clusterObjectMetas() {
				require.Empty(t, o.Namespace, "%s: %s is cluster-scoped", ov.dir, o.Name)
			}
			for _, s := range b.services {
				require.True(t, matchesAny(labels.SelectorFromSet(s.Spec.Selector), podLabels), "%s: Service %s selects no pods", ov.dir, s.Name)
			}
			for _, p := range b.pdbs {
				sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				require.NoError(t, err)
				require.True(t, matchesAny(sel, podLabels), "%s: PodDisruptionBudget %s selects no pods", ov.dir, p.Name)
			}
			for _, m := range b.monitors {
				checkServiceMonitor(t, b, m)
			}

			hasServer := slices.ContainsFunc(b.deployments, func(d appsv1.Deployment) bool { return d.Name == "greenq-server" })
			require.Equal(t, ov.server, hasServer, "%s: server Deployment", ov.dir)
			require.Equal(t, ov.redis, len(b.statefulSets) > 0, "%s: Redis StatefulSet", ov.dir)
			if ov.server {
				checkServer(t, b)
			}
			if ov.kubeExecutor {
				checkKubeWorker(t, b, ov, cfg)
			} else {
				checkWorkerPool(t, b, ov, cfg)
			}
		})
	}
}

func (b built) objectMetas() []metav1.ObjectMeta {
	var out []metav1.ObjectMeta
	for _, x := range b.namespaces {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.serviceAccounts {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.deployments {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.statefulSets {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.services {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.configMaps {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.pdbs {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.monitors {
		out = append(out, x.Metadata)
	}
	for _, x := range b.claims {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.roles {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.roleBindings {
		out = append(out, x.ObjectMeta)
	}
	return out
}

// clusterObjectMetas are the metadata of the cluster-scoped objects.
func (b built) clusterObjectMetas() []metav1.ObjectMeta {
	var out []metav1.ObjectMeta
	for _, x := range b.clusterRoles {
		out = append(out, x.ObjectMeta)
	}
	for _, x := range b.clusterRoleBindings {
		out = append(out, x.ObjectMeta)
	}
	return out
}

func matchesAny(sel labels.Selector, sets []labels.Set) bool {
	return slices.ContainsFunc(sets, func(s labels.Set) bool { return sel.Matches(s) })
}

// checkPodSpec checks what holds for every pod: non-root, mounts refer to
// volumes, config maps exist, secrets are referenced by keys the example
// Secret documents, and secret-looking variables come only from Secrets.
func checkPodSpec(t *testing.T, where string, ps corev1.PodSpec, claims []string, configMaps, secretKeys map[string]bool) {
	t.Helper()
	require.NotNil(t, ps.SecurityContext, where)
	require.NotNil(t, ps.SecurityContext.RunAsNonRoot, where)
	require.True(t, *ps.SecurityContext.RunAsNonRoot, "%s: runAsNonRoot", where)
	require.NotNil(t, ps.SecurityContext.RunAsUser, where)
	require.NotZero(t, *ps.SecurityContext.RunAsUser, "%s: runAsUser", where)
	volumes := map[string]bool{}
	for _, c := range claims {
		volumes[c] = true
	}
	for _, v := range ps.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			require.True(t, configMaps[v.ConfigMap.Name], "%s: volume %s: no ConfigMap %s", where, v.Name, v.ConfigMap.Name)
		}
		require.Nil(t, v.Secret, "%s: mount secrets as env from greenq-secrets", where)
	}
	for _, c := range ps.Containers {
		require.NotNil(t, c.SecurityContext, "%s: container %s", where, c.Name)
		require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation, "%s: container %s", where, c.Name)
		require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, "%s: container %s", where, c.Name)
		require.NotNil(t, c.Resources.Limits.Memory(), "%s: container %s memory limit", where, c.Name)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: container %s memory limit", where, c.Name)
		for _, m := range c.VolumeMounts {
			require.True(t, volumes[m.Name], "%s: container %s mounts unknown volume %s", where, c.Name, m.Name)
		}
		for _, e := range c.Env {
			if secretName.MatchString(e.Name) {
				require.Empty(t, e.Value, "%s: %s must come from a Secret (valueFrom.secretKeyRef), not a literal", where, e.Name)
				require.True(t, e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil, "%s: %s must come from a Secret", where, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				require.True(t, secretKeys[ref.Name+"/"+ref.Key], "%s: %s reads Secret key %s/%s, which secret.example.yaml does not document", where, e.Name, ref.Name, ref.Key)
			}
		}
	}
}

// secretName matches environment variables that carry credentials.
var secretName = regexp.MustCompile(`(?i)(TOKEN|PASSWORD|SECRET|_KEY|REDIS_URL)`)

func checkServiceMonitor(t *testing.T, b built, m serviceMonitor) {
	t.Helper()
	require.Equal(t, "monitoring.coreos.com/v1", m.APIVersion)
	sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
	require.NoError(t, err)
	require.NotEmpty(t, m.Spec.Endpoints, m.Metadata.Name)
	var ports []string
	for _, s := range b.services {
		if sel.Matches(labels.Set(s.Labels)) {
			for _, p := range s.Spec.Ports {
				ports = append(ports, p.Name)
			}
		}
	}
	require.NotEmpty(t, ports, "%s: ServiceMonitor %s selects no Service", b.dir, m.Metadata.Name)
	for _, e := range m.Spec.Endpoints {
		require.Contains(t, ports, e.Port, "%s: ServiceMonitor %s scrapes a port no selected Service has", b.dir, m.Metadata.Name)
		require.Equal(t, "/metrics", e.Path)
		_, err := time.ParseDuration(e.Interval)
		require.NoError(t, err)
	}
}

// greenqContainer returns the greenq command line of a container, with
// $(VAR) references expanded from its literal env values.
func greenqContainer(t *testing.T, where string, c corev1.Container) commandLine {
	t.Helper()
	require.Equal(t, []string{"/usr/local/bin/greenq"}, c.Command, "%s: the images install greenq at /usr/local/bin/greenq", where)
	vars := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			vars[e.Name] = e.Value
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var argv []string
	for _, a := range c.Args {
		argv = append(argv, ref.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := vars[m[2:len(m)-1]]
			require.True(t, ok, "%s: %s refers to an env var the container does not set", where, m)
			return v
		}))
	}
	return commandLine{where: where + " container " + c.Name, argv: argv}
}

func checkServer(t *testing.T, b built) {
	t.Helper()
	d := b.deployment(t, "greenq-server")
	where := b.dir + " Deployment/greenq-server"
	require.NotNil(t, d.Spec.Replicas)
	if !strings.HasSuffix(b.dir, "single-node") {
		require.EqualValues(t, 2, *d.Spec.Replicas, where)
	}
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]
	pc := checkCommandLine(t, greenqContainer(t, where, c))
	require.Equal(t, "server", pc.cmd)
	_, port, err := splitHostPort(pc.flags["listen"])
	require.NoError(t, err, "%s: --listen", where)
	require.Len(t, c.Ports, 1)
	require.EqualValues(t, port, fmt.Sprint(c.Ports[0].ContainerPort), "%s: container port matches --listen", where)

	require.NotNil(t, c.ReadinessProbe, where)
	require.NotNil(t, c.ReadinessProbe.HTTPGet, where)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.NotNil(t, c.LivenessProbe, where)
	require.NotNil(t, c.LivenessProbe.HTTPGet, where)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	for _, p := range []string{c.ReadinessProbe.HTTPGet.Port.String(), c.LivenessProbe.HTTPGet.Port.String()} {
		require.Equal(t, c.Ports[0].Name, p, "%s: probes use the named port", where)
	}
	var envNames []string
	for _, e := range c.Env {
		envNames = append(envNames, e.Name)
	}
	requireBinaryReads(t, envNames...)

	var svc *corev1.Service
	for i := range b.services {
		if b.services[i].Name == "greenq-server" {
			svc = &b.services[i]
		}
	}
	require.NotNil(t, svc, "%s: Service greenq-server", b.dir)
	require.Equal(t, c.Ports[0].Name, svc.Spec.Ports[0].TargetPort.String())
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", "", fmt.Errorf("%q has no port", addr)
	}
	return addr[:i], addr[i+1:], nil
}

func checkWorkerPool(t *testing.T, b built, ov overlay, cfg greenqConfig) {
	t.Helper()
	d := b.deployment(t, "greenq-worker")
	where := b.dir + " Deployment/greenq-worker"
	ps := d.Spec.Template.Spec
	require.Len(t, ps.Containers, 1)
	c := ps.Containers[0]
	pc := checkCommandLine(t, greenqContainer(t, where, c))
	require.Equal(t, "worker", pc.cmd)
	require.Equal(t, ov.region, pc.flags["region"], where)
	require.Contains(t, cfg.regionNames(), pc.flags["region"], "%s: --region must be a region of greenq.yaml", where)

	gpus := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
	require.False(t, gpus.IsZero(), "%s: workers must request nvidia.com/gpu", where)
	require.Equal(t, gpus.String(), pc.flags["gpus"], "%s: --gpus matches the nvidia.com/gpu limit", where)
	require.Contains(t, ps.Tolerations, corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, where)
	require.Equal(t, "true", ps.NodeSelector["nvidia.com/gpu.present"], where)
	region, ok := ps.NodeSelector["topology.kubernetes.io/region"]
	if ov.anyGPUNode {
		require.False(t, ok, "%s: single-node pool must not pin a cloud region", where)
	} else {
		require.True(t, ok, "%s: the pool must be pinned to its region's nodes", where)
		require.NotEqual(t, "CLOUD-REGION", region, "%s: the base's placeholder region is left", where)
	}

	grace, err := time.ParseDuration(pc.flags["grace"])
	require.NoError(t, err, "%s: --grace", where)
	require.NotNil(t, ps.TerminationGracePeriodSeconds)
	period := time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second
	require.GreaterOrEqual(t, period, grace+10*time.Second, "%s: terminationGracePeriodSeconds must cover --grace plus a margin", where)

	metrics := pc.flags["metrics-listen"]
	require.NotEmpty(t, metrics, where)
	_, port, err := splitHostPort(metrics)
	require.NoError(t, err)
	require.Len(t, c.Ports, 1)
	require.Equal(t, port, fmt.Sprint(c.Ports[0].ContainerPort), "%s: metrics port matches --metrics-listen", where)

	var envNames []string
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "GREENQ_") {
			envNames = append(envNames, e.Name)
		}
	}
	requireBinaryReads(t, envNames...)
}

// greenqConfig is the part of greenq.yaml (DESIGN.md) that the shipped
// configs use, decoded strictly so a misspelt key fails here too.
type greenqConfig struct {
	Redis         string   `yaml:"redis"`
	RedisCluster  []string `yaml:"redis_cluster"`
	RedisSentinel *struct {
		Master string   `yaml:"master"`
		Addrs  []string `yaml:"addrs"`
	} `yaml:"redis_sentinel"`
	Listen    string `yaml:"listen"`
	Slot      string `yaml:"slot"`
	Replan    string `yaml:"replan"`
	Refresh   string `yaml:"refresh"`
	Objective struct {
		CarbonPriceUSDPerTonne float64 `yaml:"carbon_price_usd_per_tonne"`
	} `yaml:"objective"`
	Regions []struct {
		Name               string  `yaml:"name"`
		Zone               string  `yaml:"zone"`
		Provider           string  `yaml:"provider"`
		PUE                float64 `yaml:"pue"`
		GPUPriceUSDPerHour float64 `yaml:"gpu_price_usd_per_hour"`
	} `yaml:"regions"`
	Providers struct {
		File *struct {
			Dir    string `yaml:"dir"`
			Replay bool   `yaml:"replay"`
		} `yaml:"file"`
		ElectricityMaps *struct {
			BaseURL string `yaml:"base_url"`
		} `yaml:"electricitymaps"`
		WattTime *struct {
			BaseURL  string `yaml:"base_url"`
			Username string `yaml:"username"`
		} `yaml:"watttime"`
	} `yaml:"providers"`
	Worker struct {
		PowerW float64 `yaml:"power_w"`
	} `yaml:"worker"`
}

func (c greenqConfig) regionNames() []string {
	var out []string
	for _, r := range c.Regions {
		out = append(out, r.Name)
	}
	return out
}

func parseGreenqConfig(t *testing.T, where, text string) greenqConfig {
	t.Helper()
	var c greenqConfig
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c), "%s: greenq.yaml (no secrets allowed: tokens and provider keys come from Secrets)", where)
	require.NotEmpty(t, c.Regions, where)
	if c.Slot != "" {
		_, err := time.ParseDuration(c.Slot)
		require.NoError(t, err, where)
	}
	for _, r := range c.Regions {
		require.NotEmpty(t, r.Name, where)
		require.NotEmpty(t, r.Zone, where)
		require.Contains(t, []string{"file", "ukci", "watttime", "electricitymaps", "carbonaware"}, r.Provider, where)
		require.GreaterOrEqual(t, r.PUE, 1.0, where)
	}
	return c
}

// configOf returns the greenq.yaml of a build's ConfigMap.
func configOf(t *testing.T, b built) greenqConfig {
	t.Helper()
	for _, cm := range b.configMaps {
		if text, ok := cm.Data["greenq.yaml"]; ok {
			return parseGreenqConfig(t, b.dir+" ConfigMap/"+cm.Name, text)
		}
	}
	t.Fatalf("%s: no ConfigMap with greenq.yaml", b.dir)
	return greenqConfig{}
}

// TestNoSecretsInConfigMaps walks every ConfigMap value of every build:
// no key that names a credential may hold a value, no Redis URL may carry a
// password, and nothing may look like a token hash.
func TestNoSecretsInConfigMaps(t *testing.T) {
	t.Parallel()
	secretKey := regexp.MustCompile(`(?i)(password|passwd|token|secret|sha256|api_?key|credential)`)
	hexHash := regexp.MustCompile(`\b[0-9a-fA-F]{64}\b`)
	for _, dir := range kubernetesDirs(t) {
		b := buildTyped(t, dir)
		for _, cm := range b.configMaps {
			require.Empty(t, cm.BinaryData, "%s ConfigMap/%s", dir, cm.Name)
			for key, text := range cm.Data {
				where := fmt.Sprintf("%s ConfigMap/%s %s", dir, cm.Name, key)
				require.False(t, hexHash.MatchString(text), "%s: looks like a token hash; put tokens in greenq-secrets", where)
				var tree any
				require.NoError(t, yaml.Unmarshal([]byte(text), &tree), where)
				walkYAML(tree, "", func(path string, v any) {
					s := fmt.Sprint(v)
					if secretKey.MatchString(path) {
						require.Failf(t, "secret in ConfigMap", "%s: %s is set; credentials come from the Secret greenq-secrets", where, path)
					}
					if u, err := url.Parse(s); err == nil && u.User != nil {
						_, hasPassword := u.User.Password()
						require.False(t, hasPassword, "%s: %s carries a password; use the Secret key redis-url", where, path)
					}
				})
			}
		}
	}
}

// walkYAML calls fn for every scalar leaf with its dotted path.
func walkYAML(v any, path string, fn func(path string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkYAML(e, path+"."+k, fn)
		}
	case []any:
		for i, e := range x {
			walkYAML(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case nil:
	default:
		fn(path, x)
	}
}

// exampleSecretKeys decodes secret.example.yaml strictly, checks that it
// holds placeholders only, and returns its "name/key" pairs.
func exampleSecretKeys(t *testing.T) map[string]bool {
	t.Helper()
	objs, err := readObjects("kubernetes/base/secret.example.yaml")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	s := decodeAs[corev1.Secret](t, objs[0])
	require.Empty(t, s.Data, "use stringData with REPLACE_ME placeholders")
	keys := map[string]bool{}
	for k, v := range s.StringData {
		require.Contains(t, v, "REPLACE_ME", "secret.example.yaml: %s must be a marked placeholder", k)
		keys[s.Name+"/"+k] = true
	}
	return keys
}
