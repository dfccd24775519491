package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/greenq/greenq/worker/executor/kubernetes"
)

var (
	jobsGVR    = batchv1.SchemeGroupVersion.WithResource("jobs")
	podsGVR    = corev1.SchemeGroupVersion.WithResource("pods")
	podsGVK    = corev1.SchemeGroupVersion.WithKind("Pod")
	secretsGVR = corev1.SchemeGroupVersion.WithResource("secrets")
)

// imagePath is the PATH the fake cluster's "image" sets, as an image's
// ENV PATH would.
const imagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// fakeCluster plays, on client-go's fake clientset, the parts of a cluster
// the executor relies on:
//
//   - the Job controller: a created Job gets a pod (labelled as the real
//     controller labels it), a suspended Job's pods are stopped, a resumed
//     one gets a new pod, and the Job's status follows its pod's end;
//   - the garbage collector: deleting a Job with foreground propagation
//     keeps it, marked, until its pods are gone; background deletes it at
//     once and stops its pods after;
//   - the kubelet: env from secretKeyRef (a missing key is
//     CreateContainerConfigError), the container's command and args run on
//     this machine as a process group with the container's env and working
//     directory, a command that cannot be found is a StartError (128), a
//     deleted pod's container gets SIGTERM and, after the grace (the pod's,
//     or the deletion's when shorter), SIGKILL to the whole group; the exit
//     status is reported before the pod is removed; the output is the
//     pod's log, served to the executor's LogsFunc following.
//
// The image is not pulled: the command runs on this machine.
type fakeCluster struct {
	t      *testing.T
	client *fake.Clientset
	ns     string
	work   chan func()
	stop   chan struct{}
	jobMu  sync.Mutex // orders the controller's job writes with the API's patches

	mu    sync.Mutex
	procs map[string]*fakeProc // by pod name
	seq   int
	// meterDir is where the greenq-meter init container's copy lands
	// (the pod's kubernetes.MeterDir); "" before a metered pod runs.
	meterDir string
}

type fakeProc struct {
	cmd     *exec.Cmd
	log     *logBuffer
	term    bool      // SIGTERM sent
	killBy  time.Time // SIGKILL due then; zero before a deletion
	exited  bool
	deleted bool // the pod is being deleted: remove it once ended
}

func newFakeCluster(t *testing.T, ns string, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	c := &fakeCluster{t: t, client: fake.NewClientset(objs...), ns: ns, work: make(chan func(), 4096),
		stop: make(chan struct{}), procs: map[string]*fakeProc{}}
	c.client.PrependReactor("create", "jobs", c.createJob)
	c.client.PrependReactor("patch", "jobs", c.patchJob)
	c.client.PrependReactor("delete", "jobs", c.deleteJob)
	c.client.PrependReactor("delete", "pods", c.deletePod)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case f := <-c.work:
				f()
			case <-c.stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(c.stop)
		<-done
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			if !p.exited && p.cmd != nil && p.cmd.Process != nil {
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	})
	return c
}

func (c *fakeCluster) tracker() k8stesting.ObjectTracker { return c.client.Tracker() }

// do runs f on the controller's goroutine, after what is queued.
func (c *fakeCluster) do(f func()) {
	select {
	case c.work <- f:
	case <-c.stop:
	}
}

func (c *fakeCluster) fail(err error) {
	if err != nil && !apierrors.IsNotFound(err) {
		c.t.Errorf("fake cluster: %v", err)
	}
}

// ---- API reactors ----

func (c *fakeCluster) createJob(a k8stesting.Action) (bool, runtime.Object, error) {
	j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job).DeepCopy()
	j.UID = types.UID(fmt.Sprintf("uid-%s", j.Name))
	j.CreationTimestamp = metav1.Now()
	c.jobMu.Lock()
	err := c.tracker().Create(jobsGVR, j, a.GetNamespace())
	c.jobMu.Unlock()
	if err != nil {
		return true, nil, err
	}
	c.do(func() { c.startPod(j.Name) })
	return true, j, nil
}

func (c *fakeCluster) patchJob(a k8stesting.Action) (bool, runtime.Object, error) {
	c.jobMu.Lock()
	handled, obj, err := k8stesting.ObjectReaction(c.tracker())(a)
	c.jobMu.Unlock()
	if err == nil {
		name := a.(k8stesting.PatchAction).GetName()
		c.do(func() { c.syncJob(name) })
	}
	return handled, obj, err
}

func (c *fakeCluster) deleteJob(a k8stesting.Action) (bool, runtime.Object, error) {
	da := a.(k8stesting.DeleteAction)
	name, opts := da.GetName(), da.GetDeleteOptions()
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	obj, err := c.tracker().Get(jobsGVR, c.ns, name)
	if err != nil {
		return true, nil, err
	}
	j := obj.(*batchv1.Job).DeepCopy()
	if opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground {
		if j.DeletionTimestamp == nil {
			now := metav1.Now()
			j.DeletionTimestamp = &now
			j.Finalizers = append(j.Finalizers, metav1.FinalizerDeleteDependents)
			if err := c.tracker().Update(jobsGVR, j, c.ns); err != nil {
				return true, nil, err
			}
		}
		c.do(func() { c.deleteDependents(name, true) })
		return true, j, nil
	}
	if err := c.tracker().Delete(jobsGVR, c.ns, name); err != nil {
		return true, nil, err
	}
	c.do(func() { c.deleteDependents(name, false) })
	return true, j, nil
}

func (c *fakeCluster) deletePod(a k8stesting.Action) (bool, runtime.Object, error) {
	da := a.(k8stesting.DeleteAction)
	name, opts := da.GetName(), da.GetDeleteOptions()
	obj, err := c.tracker().Get(podsGVR, c.ns, name)
	if err != nil {
		return true, nil, err
	}
	p := obj.(*corev1.Pod)
	grace := podGrace(p)
	if opts.GracePeriodSeconds != nil {
		grace = time.Duration(*opts.GracePeriodSeconds) * time.Second
	}
	c.do(func() { c.terminate(name, grace) })
	return true, p, nil
}

// ---- the Job controller and the garbage collector ----

func (c *fakeCluster) job(name string) *batchv1.Job {
	obj, err := c.tracker().Get(jobsGVR, c.ns, name)
	if err != nil {
		return nil
	}
	return obj.(*batchv1.Job).DeepCopy()
}

func (c *fakeCluster) pod(name string) *corev1.Pod {
	obj, err := c.tracker().Get(podsGVR, c.ns, name)
	if err != nil {
		return nil
	}
	return obj.(*corev1.Pod).DeepCopy()
}

// podsOf lists the pods of Job name.
func (c *fakeCluster) podsOf(name string) []corev1.Pod {
	obj, err := c.tracker().List(podsGVR, podsGVK, c.ns)
	c.fail(err)
	var out []corev1.Pod
	for _, p := range obj.(*corev1.PodList).Items {
		if p.Labels[batchv1.JobNameLabel] == name {
			out = append(out, p)
		}
	}
	return out
}

// updateJob changes Job name's stored object.
func (c *fakeCluster) updateJob(name string, f func(j *batchv1.Job)) {
	c.jobMu.Lock()
	defer c.jobMu.Unlock()
	j := c.job(name)
	if j == nil {
		return
	}
	f(j)
	c.fail(c.tracker().Update(jobsGVR, j, c.ns))
}

func (c *fakeCluster) setPodStatus(p *corev1.Pod) {
	c.fail(c.tracker().Update(podsGVR, p, c.ns))
}

// startPod creates the pod of Job name and runs it, as the Job controller,
// the scheduler and the kubelet would.
func (c *fakeCluster) startPod(name string) {
	j := c.job(name)
	if j == nil || (j.Spec.Suspend != nil && *j.Spec.Suspend) || j.DeletionTimestamp != nil {
		return
	}
	c.mu.Lock()
	c.seq++
	podName := fmt.Sprintf("%s-%05d", name, c.seq)
	c.mu.Unlock()
	lbl := map[string]string{batchv1.JobNameLabel: name, batchv1.ControllerUidLabel: string(j.UID)}
	for k, v := range j.Spec.Template.Labels {
		lbl[k] = v
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: c.ns, Labels: lbl, Annotations: j.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: name, UID: j.UID,
				Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}},
	}
	p.Spec.NodeName = "node-a"
	c.fail(c.tracker().Create(podsGVR, p, c.ns))
	c.updateJob(name, func(j *batchv1.Job) { j.Status.Active = 1 })
	c.runPod(p)
}

// runPod is the kubelet: the container's env, then its command.
func (c *fakeCluster) runPod(p *corev1.Pod) {
	ctr := p.Spec.Containers[0]
	waiting := func(reason, msg string) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ctr.Name, Image: ctr.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
		c.setPodStatus(p)
	}
	var env []string
	for _, e := range ctr.Env {
		v := e.Value
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			if ref == nil {
				c.t.Errorf("fake cluster: %s: only secretKeyRef is played", e.Name)
				return
			}
			obj, err := c.tracker().Get(secretsGVR, c.ns, ref.Name)
			if err != nil {
				waiting("CreateContainerConfigError", fmt.Sprintf("secret %q not found", ref.Name))
				return
			}
			b, ok := obj.(*corev1.Secret).Data[ref.Key]
			if !ok {
				waiting("CreateContainerConfigError", fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, c.ns, ref.Name))
				return
			}
			v = string(b)
		}
		env = append(env, e.Name+"="+v)
	}
	if !hasVar(env, "PATH") {
		env = append(env, "PATH="+imagePath)
	}
	env = append(env, "HOSTNAME="+p.Name)
	argv := append(append([]string{}, ctr.Command...), ctr.Args...)
	if err := c.playMeterInit(p, argv); err != nil {
		c.ended(p.Name, &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error()})
		return
	}
	proc := &fakeProc{log: newLogBuffer()}
	c.mu.Lock()
	c.procs[p.Name] = proc
	c.mu.Unlock()
	path, err := lookPath(argv[0], env)
	var cmd *exec.Cmd
	if err == nil {
		cmd = exec.Command(path, argv[1:]...)
		cmd.Args[0] = argv[0]
		cmd.Env, cmd.Dir = env, ctr.WorkingDir
		cmd.Stdout, cmd.Stderr = proc.log, proc.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
	}
	if err != nil {
		proc.exited = true
		proc.log.Close()
		c.ended(p.Name, &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError",
			Message: fmt.Sprintf("failed to create containerd task: exec: %q: %v", argv[0], err)})
		return
	}
	c.mu.Lock()
	proc.cmd = cmd
	c.mu.Unlock()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ctr.Name, Image: ctr.Image, Ready: true, Started: ptr(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	c.setPodStatus(p)
	go func() {
		_ = cmd.Wait()
		proc.log.Close()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		c.do(func() {
			c.mu.Lock()
			proc.exited = true
			c.mu.Unlock()
			c.ended(p.Name, &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason})
		})
	}()
}

// ended reports the container's end on its pod and Job, and removes a
// pod that is being deleted.
func (c *fakeCluster) ended(podName string, t *corev1.ContainerStateTerminated) {
	p := c.pod(podName)
	if p == nil {
		return
	}
	t.FinishedAt = metav1.Now()
	p.Status.Phase = corev1.PodSucceeded
	if t.ExitCode != 0 {
		p.Status.Phase = corev1.PodFailed
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: t}}}
	c.setPodStatus(p)
	job := p.Labels[batchv1.JobNameLabel]
	c.updateJob(job, func(j *batchv1.Job) {
		j.Status.Active = 0
		if j.DeletionTimestamp != nil || (j.Spec.Suspend != nil && *j.Spec.Suspend) {
			return
		}
		now := metav1.Now()
		if t.ExitCode == 0 {
			j.Status.Succeeded = 1
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now})
		} else {
			j.Status.Failed = 1
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
				Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastTransitionTime: now})
		}
	})
	c.mu.Lock()
	deleted := c.procs[podName] != nil && c.procs[podName].deleted
	c.mu.Unlock()
	if deleted {
		c.removePod(podName)
	}
}

// removePod removes a pod whose container has ended, and a Job deleted in
// the foreground once its last pod is gone.
func (c *fakeCluster) removePod(podName string) {
	p := c.pod(podName)
	if p == nil {
		return
	}
	c.fail(c.tracker().Delete(podsGVR, c.ns, podName))
	c.finishForeground(p.Labels[batchv1.JobNameLabel])
}

func (c *fakeCluster) finishForeground(job string) {
	j := c.job(job)
	if j != nil && j.DeletionTimestamp != nil && len(c.podsOf(job)) == 0 {
		c.jobMu.Lock()
		c.fail(c.tracker().Delete(jobsGVR, c.ns, job))
		c.jobMu.Unlock()
	}
}

// syncJob acts on a patched Job: suspend stops its pods, resume starts one.
func (c *fakeCluster) syncJob(name string) {
	j := c.job(name)
	if j == nil {
		return
	}
	pods := c.podsOf(name)
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		for _, p := range pods {
			c.terminate(p.Name, podGrace(&p))
		}
		c.updateJob(name, func(j *batchv1.Job) {
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobSuspended,
				Status: corev1.ConditionTrue, Reason: "JobSuspended", LastTransitionTime: metav1.Now()})
		})
		return
	}
	if len(pods) == 0 && j.Status.Succeeded == 0 && j.Status.Failed == 0 {
		c.startPod(name)
	}
}

// deleteDependents stops Job name's pods; in the foreground the Job goes
// once they are gone.
func (c *fakeCluster) deleteDependents(name string, foreground bool) {
	for _, p := range c.podsOf(name) {
		c.terminate(p.Name, podGrace(&p))
	}
	if foreground {
		c.finishForeground(name)
	}
}

// terminate is a pod's graceful deletion: SIGTERM to the container's
// process, SIGKILL to its group after grace (a later, shorter grace moves
// the SIGKILL earlier), and the pod removed once its end is reported.
func (c *fakeCluster) terminate(podName string, grace time.Duration) {
	p := c.pod(podName)
	if p == nil {
		return
	}
	if p.DeletionTimestamp == nil {
		now := metav1.Now()
		p.DeletionTimestamp = &now
		p.DeletionGracePeriodSeconds = ptr(int64(grace / time.Second))
		c.setPodStatus(p)
	}
	c.mu.Lock()
	proc := c.procs[podName]
	if proc == nil || proc.exited || proc.cmd == nil {
		c.mu.Unlock()
		c.removePod(podName)
		return
	}
	proc.deleted = true
	pid := proc.cmd.Process.Pid
	if !proc.term {
		proc.term = true
		_ = syscall.Kill(pid, syscall.SIGTERM) // the container's PID 1, as the runtime does
	}
	by := time.Now().Add(grace)
	if proc.killBy.IsZero() || by.Before(proc.killBy) {
		proc.killBy = by
		time.AfterFunc(grace, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !proc.exited {
				_ = syscall.Kill(-pid, syscall.SIGKILL) // the whole container
			}
		})
	}
	c.mu.Unlock()
}

// podGrace is a pod's terminationGracePeriodSeconds (Kubernetes' default
// 30s when unset).
func podGrace(p *corev1.Pod) time.Duration {
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// logs is the executor's LogsFunc on this cluster: the pod's output,
// followed until its container ends.
func (c *fakeCluster) logs(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	c.mu.Lock()
	proc := c.procs[pod]
	c.mu.Unlock()
	if namespace != c.ns || container != kubernetes.ContainerName {
		return nil, fmt.Errorf("fake cluster: logs of %s/%s container %s", namespace, pod, container)
	}
	if proc == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start", container, pod))
	}
	return proc.log.reader(ctx), nil
}

// ---- helpers ----

func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// lookPath finds name in the container's PATH, as the runtime does.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("executable file not found in $PATH")
}

func ptr[T any](v T) *T { return &v }

// logBuffer is a pod's log: written by its container, read by followers.
type logBuffer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	data   []byte
	closed bool
}

func newLogBuffer() *logBuffer {
	b := &logBuffer{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = append(b.data, p...)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *logBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.cond.Broadcast()
}

func (b *logBuffer) reader(ctx context.Context) io.ReadCloser {
	r := &logReader{b: b, ctx: ctx}
	r.stop = context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.cond.Broadcast()
	})
	return r
}

type logReader struct {
	b    *logBuffer
	ctx  context.Context
	off  int
	stop func() bool
}

func (r *logReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	for r.off >= len(r.b.data) && !r.b.closed && r.ctx.Err() == nil {
		r.b.cond.Wait()
	}
	if r.off < len(r.b.data) {
		n := copy(p, r.b.data[r.off:])
		r.off += n
		return n, nil
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return 0, io.EOF
}

func (r *logReader) Close() error { r.stop(); return nil }

// playMeterInit plays the greenq-meter init container (cp SRC DIR/greenq)
// into a directory of this machine, and points argv at it.
func (c *fakeCluster) playMeterInit(p *corev1.Pod, argv []string) error {
	for _, ic := range p.Spec.InitContainers {
		if ic.Name != kubernetes.MeterContainerName {
			continue
		}
		if len(ic.Command) != 3 || ic.Command[0] != "cp" {
			return fmt.Errorf("init container %s: command %v is not cp SRC DST", ic.Name, ic.Command)
		}
		c.mu.Lock()
		if c.meterDir == "" {
			c.meterDir = c.t.TempDir()
		}
		dir := c.meterDir
		c.mu.Unlock()
		b, err := os.ReadFile(ic.Command[1])
		if err != nil {
			return fmt.Errorf("init container %s: %w", ic.Name, err)
		}
		dst := filepath.Join(dir, strings.TrimPrefix(ic.Command[2], kubernetes.MeterDir+"/"))
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return err
		}
	}
	if rest, ok := strings.CutPrefix(argv[0], kubernetes.MeterDir+"/"); ok {
		argv[0] = filepath.Join(c.meterDir, rest)
	}
	return nil
}
