package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/greenq/greenq/worker/executor"
)

// Labels, names and resources on the objects the executor makes.
const (
	// LabelManagedBy is set to ManagedBy on every Job and pod the executor
	// makes; its informers watch only those.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "greenq"
	// LabelJobID carries the greenq job id (also in the AnnotationJobID
	// annotation, unchanged).
	LabelJobID = "greenq.io/job-id"
	// AnnotationJobID is the greenq job id, as the worker has it.
	AnnotationJobID = "greenq.io/job-id"
	// LabelRun names a run's Job on the Job and its pods.
	LabelRun = "greenq.io/run"
	// ContainerName is the name of the job's container in its pod.
	ContainerName = "job"
	// GPUResource is the NVIDIA device plugin's extended resource.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"
	// DefaultSecretName is Config.SecretName's default.
	DefaultSecretName = "greenq-job-secrets"
	// MeterContainerName is the init container that puts greenq in a
	// metered job's pod (Config.MeterImage), at MeterDir.
	MeterContainerName = "greenq-meter"
	// MeterDir is where a metered job's container finds greenq, in an
	// emptyDir it may only read.
	MeterDir = "/greenq"
	// DefaultMeterBinary is Config.MeterBinary's default: where the
	// worker's image (deployments/docker) has greenq.
	DefaultMeterBinary = "/usr/local/bin/greenq"
)

// LogsFunc opens the log stream of a pod's container, following it until
// the container ends.
type LogsFunc func(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)

// Volume is a PersistentVolumeClaim mounted into every job's pod.
type Volume struct {
	// Claim is the claim's name, in the executor's namespace.
	Claim string
	// Path is where it is mounted: the same path as on the worker, so that
	// the directories the worker makes under it are the job's too.
	Path string
	// ReadOnly mounts it read-only.
	ReadOnly bool
}

// ParseVolume parses CLAIM:PATH or CLAIM:PATH:ro, the form of greenq
// worker --kube-volume.
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	v := Volume{}
	switch {
	case len(parts) == 3 && parts[2] == "ro":
		v.ReadOnly = true
	case len(parts) != 2:
		return v, fmt.Errorf("volume %q is not CLAIM:PATH or CLAIM:PATH:ro", s)
	}
	v.Claim, v.Path = parts[0], parts[1]
	if !dnsLabel.MatchString(v.Claim) && !dnsSubdomain.MatchString(v.Claim) {
		return v, fmt.Errorf("volume %q: %q is not a claim name", s, v.Claim)
	}
	if !filepath.IsAbs(v.Path) || filepath.Clean(v.Path) != v.Path {
		return v, fmt.Errorf("volume %q: %q is not a clean absolute path", s, v.Path)
	}
	return v, nil
}

// Config configures the Kubernetes executor.
type Config struct {
	// Client talks to the cluster. Required.
	Client kubernetes.Interface
	// Namespace is where jobs run. Required.
	Namespace string
	// SecretName is the Secret in Namespace that holds the jobs' secrets,
	// one key per secret name (as --secrets-dir holds one file per name);
	// a job's --secret K=NAME becomes K from key NAME. Default
	// DefaultSecretName.
	SecretName string
	// Volumes are mounted into every job's pod. Default none: the job sees
	// none of the worker's directories (its control file, output and
	// checkpoint directories included).
	Volumes []Volume
	// ServiceAccount runs the jobs' pods; its token is never mounted.
	// Default the namespace's default account.
	ServiceAccount string
	// TTLAfterFinished is how long the cluster keeps a finished Job that
	// the executor could not delete (the worker died). Default 1h.
	TTLAfterFinished time.Duration
	// LogDrain bounds how long the executor waits for the rest of a pod's
	// log once its container has ended. Default 30s.
	LogDrain time.Duration
	// Logs opens a pod's log stream. Default: the pods/log API, following.
	Logs LogsFunc
	// MeterImage is an image with greenq at MeterBinary, and cp (the
	// worker's own image): with it, each job's command runs under greenq
	// meter, which an init container copies from this image into the pod,
	// so that the job's GPUs are measured where they are (NVML) and the
	// reading comes back (a file on a Volume, Spec.ReadingFile; a post to
	// the API with the job's token). The command is then the job's argv
	// itself, not the image's ENTRYPOINT with argv as its arguments; the
	// copied greenq needs a glibc at least the worker image's in the job's
	// image. Default "": no meter, the job's GPU energy is estimated.
	MeterImage string
	// MeterBinary is greenq's path in MeterImage. Default
	// DefaultMeterBinary.
	MeterBinary string
	// Now is the clock, for activeDeadlineSeconds. Default time.Now.
	Now func() time.Time
	// Logger receives the executor's logs. Default: discard.
	Logger *slog.Logger
}

// Executor runs jobs as Kubernetes Jobs.
type Executor struct {
	cfg     Config
	client  kubernetes.Interface
	ns      string
	log     *slog.Logger
	factory informers.SharedInformerFactory
	cancel  context.CancelFunc

	mu   sync.Mutex
	runs map[string]*run // by Job name
}

var (
	_ executor.Executor        = (*Executor)(nil)
	_ executor.ResolvesSecrets = (*Executor)(nil)
	_ executor.AllocatesGPUs   = (*Executor)(nil)
	_ executor.Capacity        = (*Executor)(nil)
)

// New starts the executor's informers on cfg.Namespace and returns once
// they have synced (ctx bounds that wait). Close stops them.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("kubernetes executor: no client")
	case cfg.Namespace == "":
		return nil, errors.New("kubernetes executor: namespace is required")
	case !dnsLabel.MatchString(cfg.Namespace):
		return nil, fmt.Errorf("kubernetes executor: namespace %q is not a DNS label", cfg.Namespace)
	}
	if cfg.SecretName == "" {
		cfg.SecretName = DefaultSecretName
	}
	if cfg.TTLAfterFinished <= 0 {
		cfg.TTLAfterFinished = time.Hour
	}
	if cfg.LogDrain <= 0 {
		cfg.LogDrain = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MeterBinary == "" {
		cfg.MeterBinary = DefaultMeterBinary
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{cfg: cfg, client: cfg.Client, ns: cfg.Namespace,
		log: cfg.Logger.With("component", "kubernetes"), runs: map[string]*run{}}
	if e.cfg.Logs == nil {
		e.cfg.Logs = e.apiLogs
	}
	e.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + ManagedBy }))
	pods := e.factory.Core().V1().Pods().Informer()
	jobs := e.factory.Batch().V1().Jobs().Informer()
	if _, err := pods.AddEventHandler(handler(func(p *corev1.Pod, gone bool) {
		if r := e.run(p.Labels[LabelRun]); r != nil {
			r.onPod(p, gone)
		}
	})); err != nil {
		return nil, fmt.Errorf("kubernetes executor: watch pods: %w", err)
	}
	if _, err := jobs.AddEventHandler(handler(func(j *batchv1.Job, gone bool) {
		if r := e.run(j.Name); r != nil {
			r.onJob(j, gone)
		}
	})); err != nil {
		return nil, fmt.Errorf("kubernetes executor: watch jobs: %w", err)
	}
	ictx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.factory.Start(ictx.Done())
	for typ, ok := range e.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			e.Close()
			return nil, fmt.Errorf("kubernetes executor: list %v in namespace %s: %w", typ, cfg.Namespace, context.Cause(ctx))
		}
	}
	return e, nil
}

// Close stops the informers. Runs still going are no longer followed.
func (e *Executor) Close() error {
	e.cancel()
	e.factory.Shutdown()
	return nil
}

// ResolvesSecrets implements executor.ResolvesSecrets: a job's secrets
// come from the Secret Config.SecretName, by secretKeyRef.
func (e *Executor) ResolvesSecrets() bool { return true }

// AllocatesGPUs implements executor.AllocatesGPUs: the cluster's device
// plugin picks a job's GPUs (Spec.GPUCount of them) and sets what the
// container sees.
func (e *Executor) AllocatesGPUs() bool { return true }

// Namespace returns the namespace jobs run in.
func (e *Executor) Namespace() string { return e.ns }

// SecretName returns the Secret the jobs' secrets come from.
func (e *Executor) SecretName() string { return e.cfg.SecretName }

func (e *Executor) run(name string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[name]
}

func (e *Executor) forget(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.runs, name)
}

// handler adapts a typed add/update/delete callback to an informer.
func handler[T any](fn func(obj *T, gone bool)) cache.ResourceEventHandlerFuncs {
	typed := func(obj any, gone bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if o, ok := obj.(*T); ok {
			fn(o, gone)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { typed(obj, false) },
		UpdateFunc: func(_, obj any) { typed(obj, false) },
		DeleteFunc: func(obj any) { typed(obj, true) },
	}
}

// apiLogs is the default LogsFunc: pods/log, following.
func (e *Executor) apiLogs(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return e.client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
}

// Start implements executor.Executor: it creates the run's Job and
// returns; the cluster schedules and starts its pod, and a container that
// cannot start ends the run through Wait. A Job left by an earlier run of
// the same greenq job (a worker that died, a paused segment) is deleted
// first, so the job never runs twice.
func (e *Executor) Start(ctx context.Context, s executor.Spec) (executor.Process, error) {
	job, err := e.job(s)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	e.removeEarlier(ctx, s.JobID)
	r := newRun(e, job.Name, s)
	e.mu.Lock()
	e.runs[job.Name] = r
	e.mu.Unlock()
	if _, err := e.client.BatchV1().Jobs(e.ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		e.forget(job.Name)
		return nil, fmt.Errorf("start: create Job %s/%s: %w", e.ns, job.Name, err)
	}
	e.log.Debug("job created", "job", s.JobID, "kube_job", job.Name, "image", s.Image)
	for _, m := range s.Mounts {
		if !e.covered(m.Path) {
			e.log.Warn("the job's pod does not see this directory: put it on a --kube-volume", "job", s.JobID, "path", m.Path)
		}
	}
	return r, nil
}

// removeEarlier deletes Jobs of greenq job id that no run of this
// executor follows.
func (e *Executor) removeEarlier(ctx context.Context, id string) {
	sel := labels.Set{LabelManagedBy: ManagedBy, LabelJobID: labelValue(id)}.String()
	list, err := e.client.BatchV1().Jobs(e.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		e.log.Warn("list earlier Jobs", "job", id, "err", err)
		return
	}
	for _, j := range list.Items {
		if j.Annotations[AnnotationJobID] != id || e.run(j.Name) != nil || j.DeletionTimestamp != nil {
			continue
		}
		fg := metav1.DeletePropagationForeground
		err := e.client.BatchV1().Jobs(e.ns).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &fg})
		if err != nil && !apierrors.IsNotFound(err) {
			e.log.Warn("delete an earlier run's Job", "job", id, "kube_job", j.Name, "err", err)
			continue
		}
		e.log.Info("deleted an earlier run's Job", "job", id, "kube_job", j.Name)
	}
}

// covered reports whether path is on one of the executor's volumes.
func (e *Executor) covered(path string) bool {
	for _, v := range e.cfg.Volumes {
		if _, ok := under(v.Path, path); ok {
			return true
		}
	}
	return false
}

// under reports whether path is root or below it, and where.
func under(root, path string) (string, bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// hostOnlyEnv are job variables that describe the worker's machine, not
// the job's pod: the image, the kubelet and the device plugin set them.
var hostOnlyEnv = map[string]bool{"PATH": true, "HOME": true, "USER": true, "CUDA_VISIBLE_DEVICES": true}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	secretKey    = regexp.MustCompile(`^[-._a-zA-Z0-9]{1,253}$`)
	notName      = regexp.MustCompile(`[^a-z0-9-]+`)
	notLabel     = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// job builds the Job of one run of s.
func (e *Executor) job(s executor.Spec) (*batchv1.Job, error) {
	if s.Image == "" {
		return nil, errors.New("the kubernetes executor runs images only: submit the job with --image")
	}
	if len(s.Argv) == 0 {
		return nil, errors.New("no command")
	}
	now := e.cfg.Now()
	if !s.Deadline.IsZero() && !now.Before(s.Deadline) {
		return nil, fmt.Errorf("deadline %s has passed", s.Deadline.UTC().Format(time.RFC3339))
	}
	name := jobName(s.JobID)
	lbl := map[string]string{LabelManagedBy: ManagedBy, LabelJobID: labelValue(s.JobID), LabelRun: name}
	env, err := e.env(s)
	if err != nil {
		return nil, err
	}
	c := corev1.Container{
		Name:       ContainerName,
		Image:      s.Image,
		Args:       slices.Clone(s.Argv),
		WorkingDir: s.Dir,
		Env:        env,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if n := gpuCount(s); n > 0 {
		// Requests of an extended resource default to its limits.
		c.Resources.Limits = corev1.ResourceList{GPUResource: *resource.NewQuantity(int64(n), resource.DecimalSI)}
	}
	pod := corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		ServiceAccountName:           e.cfg.ServiceAccount,
		AutomountServiceAccountToken: ptr(false),
		EnableServiceLinks:           ptr(false),
		Containers:                   []corev1.Container{c},
	}
	if s.Grace > 0 {
		pod.TerminationGracePeriodSeconds = ptr(int64(math.Ceil(s.Grace.Seconds())))
	}
	if u := s.User; u != nil {
		pod.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr(int64(u.UID)), RunAsGroup: ptr(int64(u.GID))}
		for _, g := range u.Groups {
			pod.SecurityContext.SupplementalGroups = append(pod.SecurityContext.SupplementalGroups, int64(g))
		}
		if u.UID != 0 {
			pod.SecurityContext.RunAsNonRoot = ptr(true)
		}
	}
	for i, v := range e.cfg.Volumes {
		vname := fmt.Sprintf("greenq-%d", i)
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: vname, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.Claim, ReadOnly: v.ReadOnly}}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: vname, MountPath: v.Path, ReadOnly: v.ReadOnly})
		// A directory the job may only read (greenq's control file) is
		// mounted again over itself, read-only.
		for _, m := range s.Mounts {
			if rel, ok := under(v.Path, m.Path); ok && m.ReadOnly && !v.ReadOnly && rel != "." {
				pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts,
					corev1.VolumeMount{Name: vname, MountPath: m.Path, SubPath: rel, ReadOnly: true})
			}
		}
	}
	if e.cfg.MeterImage != "" {
		e.meter(&pod, s)
	}
	spec := batchv1.JobSpec{
		BackoffLimit:            ptr(int32(0)),
		Parallelism:             ptr(int32(1)),
		Completions:             ptr(int32(1)),
		TTLSecondsAfterFinished: ptr(int32(e.cfg.TTLAfterFinished / time.Second)),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: lbl, Annotations: map[string]string{AnnotationJobID: s.JobID}},
			Spec:       pod,
		},
	}
	if !s.Deadline.IsZero() {
		spec.ActiveDeadlineSeconds = ptr(max(int64(math.Ceil(s.Deadline.Sub(now).Seconds())), 1))
	}
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: maps.Clone(lbl),
			Annotations: map[string]string{AnnotationJobID: s.JobID}},
		Spec: spec,
	}, nil
}

// meter runs the pod's job container under greenq meter, which an init
// container copies from Config.MeterImage into an emptyDir at MeterDir.
// Inside the container the device plugin's GPUs are NVML's 0…n-1.
func (e *Executor) meter(pod *corev1.PodSpec, s executor.Spec) {
	const vol = "greenq-meter"
	pod.Volumes = append(pod.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("256Mi"))}}})
	c := &pod.Containers[0]
	pod.InitContainers = append(pod.InitContainers, corev1.Container{
		Name: MeterContainerName, Image: e.cfg.MeterImage,
		Command:         []string{"cp", e.cfg.MeterBinary, MeterDir + "/greenq"},
		VolumeMounts:    []corev1.VolumeMount{{Name: vol, MountPath: MeterDir}},
		SecurityContext: c.SecurityContext.DeepCopy(),
	})
	argv := []string{MeterDir + "/greenq", "meter"}
	if n := gpuCount(s); n > 0 {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		argv = append(argv, "--gpus", strings.Join(ids, ","))
	}
	if f := e.readingFile(s); f != "" {
		argv = append(argv, "--out", f)
	}
	c.Command = append(argv, "--")
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: MeterDir, ReadOnly: true})
}

// readingFile is where the meter writes its reading for the worker to
// read back: s.ReadingFile when a writable Volume holds it, else "" (the
// reading goes to the job's log, and to the API with a job token).
func (e *Executor) readingFile(s executor.Spec) string {
	if e.cfg.MeterImage == "" || s.ReadingFile == "" {
		return ""
	}
	for _, v := range e.cfg.Volumes {
		if _, ok := under(v.Path, s.ReadingFile); ok && !v.ReadOnly {
			return s.ReadingFile
		}
	}
	return ""
}

// env is the container's environment: s.Env less hostOnlyEnv and the
// names of its secrets, then each secret by reference.
func (e *Executor) env(s executor.Spec) ([]corev1.EnvVar, error) {
	var env []corev1.EnvVar
	for _, kv := range s.Env {
		name, value, _ := strings.Cut(kv, "=")
		if _, secret := s.Secrets[name]; secret || hostOnlyEnv[name] {
			continue
		}
		env = append(env, corev1.EnvVar{Name: name, Value: value})
	}
	names := make([]string, 0, len(s.Secrets))
	for k := range s.Secrets {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		key := s.Secrets[k]
		if !secretKey.MatchString(key) {
			return nil, fmt.Errorf("secret %s (for %s) is not a key a Kubernetes Secret can hold", key, k)
		}
		env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: e.cfg.SecretName}, Key: key}}})
	}
	return env, nil
}

// jobName is a fresh Job name for greenq job id: a DNS label short
// enough for the Job controller's pod names.
func jobName(id string) string {
	n := strings.Trim(notName.ReplaceAllString(strings.ToLower(id), "-"), "-")
	if len(n) > 40 {
		n = strings.TrimRight(n[:40], "-")
	}
	if n == "" {
		n = "job"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "greenq-" + n + "-" + hex.EncodeToString(b[:])
}

// labelValue is id as a label value (the annotation keeps it whole).
func labelValue(id string) string {
	v := notLabel.ReplaceAllString(id, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

func ptr[T any](v T) *T { return &v }

// gpuCount is how many GPUs s asks for.
func gpuCount(s executor.Spec) int {
	if s.GPUCount > 0 {
		return s.GPUCount
	}
	return len(s.GPUs)
}
