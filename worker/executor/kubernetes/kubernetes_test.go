package kubernetes_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/executortest"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

const ns = "greenq-jobs"

func TestMain(m *testing.M) {
	// Stands in for the worker's own secrets: it must not reach a job.
	os.Setenv("GREENQ_REDIS_URL", "redis://:worker-password@10.0.0.1:6379/0")
	os.Exit(m.Run())
}

// tlog sends the executor's logs to t.Log.
func tlog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newExecutor returns an executor on c, closed when the test ends.
func newExecutor(t *testing.T, c *fakeCluster, cfg kubernetes.Config) *kubernetes.Executor {
	t.Helper()
	cfg.Client, cfg.Namespace = c.client, c.ns
	if cfg.Logs == nil {
		cfg.Logs = c.logs
	}
	if cfg.Logger == nil {
		cfg.Logger = tlog(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := kubernetes.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// The shared suite, through the executor's API calls on a fake cluster
// whose kubelet runs the commands on this machine.
func TestKubernetesExecutor(t *testing.T) {
	t.Parallel()
	executortest.Run(t, executortest.Target{
		New: func(t *testing.T) executor.Executor {
			gpuNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Allocatable: corev1.ResourceList{kubernetes.GPUResource: *resource.NewQuantity(2, resource.DecimalSI)}}}
			c := newFakeCluster(t, ns, gpuNode, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: kubernetes.DefaultSecretName, Namespace: ns}, Data: map[string][]byte{}})
			e := newExecutor(t, c, kubernetes.Config{})
			clusters.Store(e, c)
			return e
		},
		Image: "registry.example.com/greenq/suite:1",
		GPUs:  1,
		PutSecret: func(t *testing.T, ex executor.Executor, name, value string) {
			c, ok := clusters.Load(ex)
			require.True(t, ok)
			cl := c.(*fakeCluster).client
			s, err := cl.CoreV1().Secrets(ns).Get(context.Background(), kubernetes.DefaultSecretName, metav1.GetOptions{})
			require.NoError(t, err)
			s.Data[name] = []byte(value)
			_, err = cl.CoreV1().Secrets(ns).Update(context.Background(), s, metav1.UpdateOptions{})
			require.NoError(t, err)
		},
	})
}

// clusters maps the suite's executors to their fake clusters.
var clusters sync.Map

func waitExit(t *testing.T, p executor.Process) executor.Exit {
	t.Helper()
	return executortest.Wait(t, p, 60*time.Second)
}

func onlyJob(t *testing.T, client *fake.Clientset) batchv1.Job {
	t.Helper()
	l, err := client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, l.Items, 1)
	return l.Items[0]
}

// The Job a run becomes, field by field.
func TestJobObject(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns,
		Volumes:        []kubernetes.Volume{{Claim: "greenq-shared", Path: "/var/lib/greenq"}, {Claim: "datasets", Path: "/data", ReadOnly: true}},
		ServiceAccount: "greenq-job", Now: func() time.Time { return now }, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	spec := executor.Spec{
		JobID: "01J9ZQ4M2X7K3VNC8B5T6W0RYA",
		Argv:  []string{"python", "train.py", "--epochs", "3"},
		Env: []string{"PATH=/usr/bin:/bin", "HOME=/home/worker", "USER=worker", "LANG=C.UTF-8",
			"EPOCHS=3", "HF_TOKEN=must-not-appear", "GREENQ_JOB_ID=01J9ZQ4M2X7K3VNC8B5T6W0RYA",
			"CUDA_VISIBLE_DEVICES=0,1", "CUDA_DEVICE_ORDER=PCI_BUS_ID"},
		Secrets:  map[string]string{"HF_TOKEN": "hf-token", "WANDB_API_KEY": "wandb"},
		Dir:      "/var/lib/greenq/jobdir/01j9",
		GPUCount: 2,
		Image:    "registry.example.com/ml/train:2.1",
		Mounts:   []executor.Mount{{Path: "/var/lib/greenq/jobdir/01j9"}, {Path: "/var/lib/greenq/run/greenq-ctl-1", ReadOnly: true}, {Path: "/tmp/elsewhere", ReadOnly: true}},
		User:     &executor.User{UID: 10001, GID: 10001, Groups: []uint32{44}},
		Deadline: now.Add(90*time.Minute + 500*time.Millisecond),
		Grace:    45 * time.Second,
	}
	_, err = e.Start(context.Background(), spec)
	require.NoError(t, err)
	j := onlyJob(t, client)

	require.Regexp(t, `^greenq-01j9zq4m2x7k3vnc8b5t6w0rya-[0-9a-f]{6}$`, j.Name)
	require.Equal(t, ns, j.Namespace)
	lbl := map[string]string{"app.kubernetes.io/managed-by": "greenq", "greenq.io/job-id": spec.JobID, "greenq.io/run": j.Name}
	require.Equal(t, lbl, j.Labels)
	require.Equal(t, map[string]string{"greenq.io/job-id": spec.JobID}, j.Annotations)

	js := j.Spec
	require.Equal(t, ptr(int32(0)), js.BackoffLimit, "greenq retries, not the Job controller")
	require.Equal(t, ptr(int32(1)), js.Parallelism)
	require.Equal(t, ptr(int32(1)), js.Completions)
	require.Equal(t, ptr(int64(5401)), js.ActiveDeadlineSeconds, "seconds to the deadline, rounded up")
	require.Equal(t, ptr(int32(3600)), js.TTLSecondsAfterFinished)
	require.Nil(t, js.Suspend)
	require.Equal(t, lbl, js.Template.Labels)
	require.Equal(t, map[string]string{"greenq.io/job-id": spec.JobID}, js.Template.Annotations)

	ps := js.Template.Spec
	require.Equal(t, corev1.RestartPolicyNever, ps.RestartPolicy)
	require.Equal(t, ptr(int64(45)), ps.TerminationGracePeriodSeconds)
	require.Equal(t, "greenq-job", ps.ServiceAccountName)
	require.Equal(t, ptr(false), ps.AutomountServiceAccountToken)
	require.Equal(t, ptr(false), ps.EnableServiceLinks)
	require.Equal(t, &corev1.PodSecurityContext{RunAsUser: ptr(int64(10001)), RunAsGroup: ptr(int64(10001)),
		RunAsNonRoot: ptr(true), SupplementalGroups: []int64{44}}, ps.SecurityContext)
	require.Equal(t, []corev1.Volume{
		{Name: "greenq-0", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "greenq-shared"}}},
		{Name: "greenq-1", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "datasets", ReadOnly: true}}},
	}, ps.Volumes)
	require.Len(t, ps.Containers, 1)
	require.Empty(t, ps.InitContainers)

	c := ps.Containers[0]
	require.Equal(t, "job", c.Name)
	require.Equal(t, spec.Image, c.Image)
	require.Empty(t, c.Command, "the image's entrypoint stays, as with podman run")
	require.Equal(t, spec.Argv, c.Args)
	require.Equal(t, spec.Dir, c.WorkingDir)
	require.Equal(t, []corev1.EnvVar{
		{Name: "LANG", Value: "C.UTF-8"},
		{Name: "EPOCHS", Value: "3"},
		{Name: "GREENQ_JOB_ID", Value: spec.JobID},
		{Name: "CUDA_DEVICE_ORDER", Value: "PCI_BUS_ID"},
		{Name: "HF_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "greenq-job-secrets"}, Key: "hf-token"}}},
		{Name: "WANDB_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "greenq-job-secrets"}, Key: "wandb"}}},
	}, c.Env, "PATH, HOME, USER and CUDA_VISIBLE_DEVICES are the image's, the kubelet's and the device plugin's")
	require.Equal(t, corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(2, resource.DecimalSI)}}, c.Resources)
	require.Equal(t, []corev1.VolumeMount{
		{Name: "greenq-0", MountPath: "/var/lib/greenq"},
		{Name: "greenq-0", MountPath: "/var/lib/greenq/run/greenq-ctl-1", SubPath: "run/greenq-ctl-1", ReadOnly: true},
		{Name: "greenq-1", MountPath: "/data", ReadOnly: true},
	}, c.VolumeMounts, "a read-only directory of the run is mounted again over itself, read-only")
	require.Equal(t, &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}, c.SecurityContext)

	raw, err := json.Marshal(j)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "must-not-appear", "secret values stay out of the Job")
}

// Without an image, GPUs, grace or deadline the Job leaves those fields
// to the cluster; a job without an image is refused.
func TestJobDefaultsAndRefusals(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Start(context.Background(), executor.Spec{JobID: "a", Argv: []string{"true"}})
	require.ErrorContains(t, err, "--image")
	_, err = e.Start(context.Background(), executor.Spec{JobID: "a", Argv: []string{"true"}, Image: "x",
		Secrets: map[string]string{"K": "a/b"}})
	require.ErrorContains(t, err, "a/b")
	_, err = e.Start(context.Background(), executor.Spec{JobID: "a", Argv: []string{"true"}, Image: "x",
		Deadline: time.Now().Add(-time.Second)})
	require.ErrorContains(t, err, "deadline")
	_, err = e.Start(context.Background(), executor.Spec{JobID: "a", Image: "x"})
	require.ErrorContains(t, err, "no command")

	_, err = e.Start(context.Background(), executor.Spec{JobID: "a", Argv: []string{"true"}, Image: "x", GPUs: []int{3}})
	require.NoError(t, err)
	j := onlyJob(t, client)
	ps := j.Spec.Template.Spec
	require.Nil(t, j.Spec.ActiveDeadlineSeconds)
	require.Nil(t, ps.TerminationGracePeriodSeconds)
	require.Nil(t, ps.SecurityContext)
	require.Empty(t, ps.Volumes)
	require.Equal(t, corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(1, resource.DecimalSI)}, ps.Containers[0].Resources.Limits,
		"one GPU handed by index is one GPU asked of the device plugin")

	for _, bad := range []string{"", "claim", "Claim:/x", "c:rel", "c:/x/../y", "c:/x:rw"} {
		_, err := kubernetes.ParseVolume(bad)
		require.Error(t, err, bad)
	}
	v, err := kubernetes.ParseVolume("greenq-shared:/var/lib/greenq:ro")
	require.NoError(t, err)
	require.Equal(t, kubernetes.Volume{Claim: "greenq-shared", Path: "/var/lib/greenq", ReadOnly: true}, v)
}

// recorder records the API calls a client receives.
func deletes(client *fake.Clientset, resource string) []k8stesting.DeleteAction {
	var out []k8stesting.DeleteAction
	for _, a := range client.Actions() {
		if d, ok := a.(k8stesting.DeleteAction); ok && a.GetVerb() == "delete" && a.GetResource().Resource == resource {
			out = append(out, d)
		}
	}
	return out
}

// SIGTERM deletes the Job in the foreground, SIGKILL its pods with a
// one-second grace, a pause suspends it, other signals are refused; the
// kubelet's grace is the job's.
func TestStopCalls(t *testing.T) {
	t.Parallel()
	c := newFakeCluster(t, ns)
	p, out, _ := startReady(t, c, "stop", 30*time.Second, `trap 'echo got-TERM' TERM`)
	require.ErrorContains(t, p.Signal(syscall.SIGUSR1), "cannot send")
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "got-TERM") }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, p.Signal(syscall.SIGKILL))
	exit := waitExit(t, p)
	require.Equal(t, 137, exit.Code, out.String())
	require.NoError(t, exit.Err)

	jd := deletes(c.client, "jobs")
	require.GreaterOrEqual(t, len(jd), 2)
	require.Equal(t, ptr(metav1.DeletePropagationForeground), jd[0].GetDeleteOptions().PropagationPolicy, "SIGTERM")
	require.Equal(t, ptr(metav1.DeletePropagationBackground), jd[1].GetDeleteOptions().PropagationPolicy, "SIGKILL")
	pd := deletes(c.client, "pods")
	require.Len(t, pd, 1)
	require.Equal(t, ptr(int64(1)), pd[0].GetDeleteOptions().GracePeriodSeconds)
	require.Empty(t, jobsLeft(t, c), "the run's Job is gone")
	require.NoError(t, p.Signal(syscall.SIGTERM), "signalling an ended run is not an error")
}

// startReady starts job id on c with grace, running trap and then looping
// until stopped, and returns once the job's pod is running the loop.
func startReady(t *testing.T, c *fakeCluster, id string, grace time.Duration, trap string) (executor.Process, *executortest.Output, string) {
	t.Helper()
	e := newExecutor(t, c, kubernetes.Config{})
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	out := &executortest.Output{}
	p, err := e.Start(context.Background(), executor.Spec{JobID: id, Image: "x", Dir: dir, Output: out, Grace: grace,
		Argv: []string{"sh", "-c", trap + `; touch "$0"; while :; do sleep 0.1; done`, ready}})
	require.NoError(t, err)
	waitForFile(t, ready)
	return p, out, dir
}

func jobsLeft(t *testing.T, c *fakeCluster) []batchv1.Job {
	t.Helper()
	l, err := c.client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	return l.Items
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, 60*time.Second, 20*time.Millisecond,
		"the job did not create %s", path)
}

// A pause suspends the Job: the Job controller stops the pod (SIGTERM,
// the job saves and exits), the run ends with the job's exit status, and
// the suspended Job is removed; the next segment is a new Job.
func TestPauseSuspends(t *testing.T) {
	t.Parallel()
	c := newFakeCluster(t, ns)
	p, out, dir := startReady(t, c, "pause", 20*time.Second, `trap 'echo saved > ckpt; exit 0' TERM`)
	pauser, ok := p.(executor.Pauser)
	require.True(t, ok, "a run is an executor.Pauser")
	require.NoError(t, pauser.Pause())
	exit := waitExit(t, p)
	require.Equal(t, 0, exit.Code, "%v\n%s", exit.Err, out.String())
	got, err := os.ReadFile(filepath.Join(dir, "ckpt"))
	require.NoError(t, err)
	require.Equal(t, "saved\n", string(got))

	var patched bool
	for _, a := range c.client.Actions() {
		if pa, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "jobs" {
			require.JSONEq(t, `{"spec":{"suspend":true}}`, string(pa.GetPatch()))
			patched = true
		}
	}
	require.True(t, patched)
	require.Empty(t, deletes(c.client, "pods"), "the Job controller stops a suspended Job's pod, not the executor")
	require.Empty(t, jobsLeft(t, c))
	require.NoError(t, pauser.Pause(), "pausing an ended run is not an error")
}

// Secrets reach the job from the Secret by secretKeyRef; a missing key
// ends the run with the kubelet's reason, and no value ever passes through
// the executor.
func TestSecrets(t *testing.T) {
	t.Parallel()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "team-secrets", Namespace: ns},
		Data: map[string][]byte{"hf-token": []byte("hf_s3cr3t")}}
	c := newFakeCluster(t, ns, secret)
	e := newExecutor(t, c, kubernetes.Config{SecretName: "team-secrets"})
	require.True(t, e.ResolvesSecrets())

	out := &executortest.Output{}
	p, err := e.Start(context.Background(), executor.Spec{JobID: "sec", Image: "x", Dir: t.TempDir(), Output: out,
		Argv: []string{"sh", "-c", `echo "token=$HF_TOKEN"`}, Secrets: map[string]string{"HF_TOKEN": "hf-token"}})
	require.NoError(t, err)
	require.Equal(t, 0, waitExit(t, p).Code, out.String())
	require.Contains(t, out.String(), "token=hf_s3cr3t")

	out = &executortest.Output{}
	p, err = e.Start(context.Background(), executor.Spec{JobID: "sec2", Image: "x", Dir: t.TempDir(), Output: out,
		Argv: []string{"true"}, Secrets: map[string]string{"DB_PASSWORD": "db-password"}})
	require.NoError(t, err)
	exit := waitExit(t, p)
	require.Equal(t, -1, exit.Code)
	require.ErrorContains(t, exit.Err, "CreateContainerConfigError")
	require.ErrorContains(t, exit.Err, "couldn't find key db-password in Secret greenq-jobs/team-secrets")
	require.Contains(t, out.String(), "greenq: the container cannot start: CreateContainerConfigError")
	require.Eventually(t, func() bool { return len(jobsLeft(t, c)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"a Job that cannot start is deleted")

	for _, a := range c.client.Actions() {
		if a.GetResource().Resource == "secrets" {
			t.Fatalf("the executor read a Secret: %v", a)
		}
	}
}

// An image the kubelet cannot pull, and a pod no node can take, are told
// in the job's output; the first ends the run.
func TestPodTroubles(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	out := &executortest.Output{}
	p, err := e.Start(context.Background(), executor.Spec{JobID: "pull", Image: "registry.example.com/nope:1", Argv: []string{"true"}, Output: out})
	require.NoError(t, err)
	j := onlyJob(t, client)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-abcde", Namespace: ns, Labels: j.Spec.Template.Labels},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
			Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}}}}
	pod, err = client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "waiting for a node: 0/3 nodes") }, 10*time.Second, 10*time.Millisecond)
	pod.Status.Conditions[0].Status = corev1.ConditionTrue
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "job", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.example.com/nope:1"`}}}}
	_, err = client.CoreV1().Pods(ns).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	exit := waitExit(t, p)
	require.Equal(t, -1, exit.Code)
	require.ErrorContains(t, exit.Err, "ImagePullBackOff")
	require.Equal(t, 1, strings.Count(out.String(), "waiting for a node"), "told once")
}

// A Job that ends without a pod to report (deleted by hand before its pod
// started) ends the run with an error, not a hang.
func TestJobGoneWithoutPod(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	p, err := e.Start(context.Background(), executor.Spec{JobID: "gone", Image: "x", Argv: []string{"true"}})
	require.NoError(t, err)
	j := onlyJob(t, client)
	require.NoError(t, client.BatchV1().Jobs(ns).Delete(context.Background(), j.Name, metav1.DeleteOptions{}))
	exit := waitExit(t, p)
	require.Equal(t, -1, exit.Code)
	require.ErrorContains(t, exit.Err, "without a pod")
}

// Starting a job again deletes a Job an earlier run of it left (a worker
// that died), so that it never runs twice.
func TestStartRemovesEarlierRun(t *testing.T) {
	t.Parallel()
	earlier := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "greenq-again-000000", Namespace: ns,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "greenq", "greenq.io/job-id": "again", "greenq.io/run": "greenq-again-000000"},
		Annotations: map[string]string{"greenq.io/job-id": "again"}}}
	other := earlier.DeepCopy()
	other.Name, other.Labels["greenq.io/job-id"], other.Annotations["greenq.io/job-id"] = "greenq-other-000000", "other", "other"
	client := fake.NewClientset(earlier, other)
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Start(context.Background(), executor.Spec{JobID: "again", Image: "x", Argv: []string{"true"}})
	require.NoError(t, err)
	var names []string
	l, err := client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, j := range l.Items {
		names = append(names, j.Name)
	}
	require.Len(t, names, 2)
	require.Contains(t, names, "greenq-other-000000")
	require.NotContains(t, names, "greenq-again-000000")
}

// Capacity: allocatable GPUs of schedulable, ready nodes, less what the
// pods bound to them and not ended request, in every namespace.
func TestCapacity(t *testing.T) {
	t.Parallel()
	node := func(name string, gpus int64, ready, unschedulable bool) runtime.Object {
		st := corev1.ConditionTrue
		if !ready {
			st = corev1.ConditionFalse
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Unschedulable: unschedulable},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}}
		if gpus > 0 {
			n.Status.Allocatable[kubernetes.GPUResource] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		return n
	}
	gpuRes := func(req, lim int64) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{}
		if req > 0 {
			r.Requests = corev1.ResourceList{kubernetes.GPUResource: *resource.NewQuantity(req, resource.DecimalSI)}
		}
		if lim > 0 {
			r.Limits = corev1.ResourceList{kubernetes.GPUResource: *resource.NewQuantity(lim, resource.DecimalSI)}
		}
		return r
	}
	pod := func(name, namespace, node string, phase corev1.PodPhase, init []corev1.Container, ctrs ...corev1.Container) runtime.Object {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: corev1.PodSpec{NodeName: node, Containers: ctrs, InitContainers: init}, Status: corev1.PodStatus{Phase: phase}}
	}
	always := corev1.ContainerRestartPolicyAlways
	client := fake.NewClientset(
		node("a", 8, true, false),
		node("b", 4, true, false),
		node("cordoned", 8, true, true),
		node("notready", 8, false, false),
		node("cpu", 0, true, false),
		// a: 2 (limit only) + 1 (request) + max(init 3, main 1) = 6 held.
		pod("train", "team-a", "a", corev1.PodRunning, nil, corev1.Container{Name: "c", Resources: gpuRes(0, 2)}),
		pod("infer", "team-b", "a", corev1.PodPending, nil, corev1.Container{Name: "c", Resources: gpuRes(1, 1)}),
		pod("warm", "team-b", "a", corev1.PodRunning, []corev1.Container{{Name: "i", Resources: gpuRes(3, 3)}},
			corev1.Container{Name: "c", Resources: gpuRes(1, 1)}),
		// b: a sidecar init container counts beside the main one: 1 + 2.
		pod("side", "team-c", "b", corev1.PodRunning, []corev1.Container{{Name: "s", RestartPolicy: &always, Resources: gpuRes(1, 1)}},
			corev1.Container{Name: "c", Resources: gpuRes(2, 2)}),
		// Ended, unbound or on a node left out: not counted.
		pod("done", "team-a", "a", corev1.PodSucceeded, nil, corev1.Container{Name: "c", Resources: gpuRes(0, 2)}),
		pod("failed", "team-a", "b", corev1.PodFailed, nil, corev1.Container{Name: "c", Resources: gpuRes(0, 1)}),
		pod("unbound", "team-a", "", corev1.PodPending, nil, corev1.Container{Name: "c", Resources: gpuRes(0, 8)}),
		pod("elsewhere", "team-a", "cordoned", corev1.PodRunning, nil, corev1.Container{Name: "c", Resources: gpuRes(0, 8)}),
	)
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	c, err := e.Capacity(context.Background())
	require.NoError(t, err)
	require.Equal(t, kubernetes.Capacity{Nodes: []kubernetes.NodeGPUs{
		{Name: "a", Allocatable: 8, Requested: 6},
		{Name: "b", Allocatable: 4, Requested: 3},
	}}, c)
	require.EqualValues(t, 3, c.Free())
	require.EqualValues(t, 8, c.Largest())
	require.EqualValues(t, 12, c.Total())
	require.EqualValues(t, 2, c.LargestFree())

	// A run of this executor waiting for its pod counts as Busy and
	// Offered: the GPUs are the executor's to use.
	_, err = e.Start(context.Background(), executor.Spec{JobID: "cap", Image: "x", Argv: []string{"true"}, GPUCount: 2})
	require.NoError(t, err)
	gc, err := e.GPUCapacity(context.Background())
	require.NoError(t, err)
	require.Equal(t, executor.GPUCapacity{Offered: 5, Busy: 2, Largest: 8, Total: 12}, gc)
}

// The Executor's optional interfaces, for the worker.
func TestInterfaces(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, newFakeCluster(t, ns), kubernetes.Config{})
	var ex executor.Executor = e
	require.True(t, executor.Allocates(ex), "the device plugin picks the GPUs")
	rs, ok := ex.(executor.ResolvesSecrets)
	require.True(t, ok)
	require.True(t, rs.ResolvesSecrets())
	_, ok = ex.(executor.Capacity)
	require.True(t, ok)
	require.Equal(t, ns, e.Namespace())
}

// A pod the cluster took away (preempted, evicted, its node gone) is not
// the job's failure: the run ends with executor.ErrLost, and greenq plans
// the job again.
func TestLostPods(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		end  func(t *testing.T, client *fake.Clientset, pod *corev1.Pod)
		want string
	}{
		{"preempted", func(t *testing.T, client *fake.Clientset, pod *corev1.Pod) {
			pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget,
				Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler", Message: "Preempted in order to admit critical pod"})
			pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}
			_, err := client.CoreV1().Pods(ns).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
			require.NoError(t, err)
		}, "PreemptionByScheduler"},
		{"node gone", func(t *testing.T, client *fake.Clientset, pod *corev1.Pod) {
			require.NoError(t, client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
		}, "deleted before it reported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset()
			e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t), LogDrain: time.Second})
			require.NoError(t, err)
			defer e.Close()
			out := &executortest.Output{}
			p, err := e.Start(context.Background(), executor.Spec{JobID: "lost", Image: "x", Argv: []string{"train"}, Output: out})
			require.NoError(t, err)
			j := onlyJob(t, client)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-abcde", Namespace: ns, Labels: j.Spec.Template.Labels},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "job",
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
			pod, err = client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return strings.Contains(out.String(), "fake logs") }, 10*time.Second, 10*time.Millisecond,
				"the pod's log stream (the fake clientset's fixed body)")
			tt.end(t, client, pod)
			exit := waitExit(t, p)
			require.Equal(t, -1, exit.Code)
			require.ErrorIs(t, exit.Err, executor.ErrLost)
			require.ErrorContains(t, exit.Err, tt.want)
		})
	}
}
