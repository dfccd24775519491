package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/greenq/greenq/worker/executor"
)

// apiTimeout bounds each API call a run makes on its own (signals,
// clean-up).
const apiTimeout = 30 * time.Second

// killGrace is the grace SIGKILL deletes pods with: the shortest the API
// server keeps a pod for, so the kubelet kills it at once and still reports
// its exit status (a grace of 0 would remove the pod unreported).
const killGrace = 1

// fatalWaiting are container waiting reasons that end a run: the
// container cannot start without someone changing the image, the Secret
// or the spec. (ErrImagePull is retried once by the kubelet; its
// ImagePullBackOff ends the run.)
var fatalWaiting = map[string]bool{
	"InvalidImageName": true, "ErrImageNeverPull": true, "ImagePullBackOff": true,
	"CreateContainerConfigError": true, "CreateContainerError": true,
}

// startErrors are terminated reasons of a container that never ran its
// command.
var startErrors = map[string]bool{"StartError": true, "ContainerCannotRun": true}

// run is one run of a job: its Job, the pod that runs it, and the pod's
// log copied into the job's output.
type run struct {
	e     *Executor
	name  string // the Job
	jobID string
	gpus  int // what its pod asks for
	// reading is where greenq meter writes the run's reading, read back
	// into Exit.Energy; "" without one (Executor.readingFile).
	reading string
	out     io.Writer
	log     *slog.Logger

	mu         sync.Mutex
	pod        string // the pod followed; "" until one appears
	podLive    bool   // the pod followed exists
	jobEnded   bool   // the Job is suspended, deleting, gone, complete or failed
	jobGone    bool
	jobFailure string // the Job's Failed condition, for a run no pod reports
	signalled  bool   // greenq stopped or paused the run
	confirming bool   // endWithoutPod is asking the API
	said       map[string]bool
	logging    bool
	cancelLogs context.CancelFunc
	logDone    chan struct{} // closed when the log stream has ended
	exit       *executor.Exit
	decided    chan struct{} // closed once exit is set
}

var _ executor.Pauser = (*run)(nil)

func newRun(e *Executor, name string, s executor.Spec) *run {
	out := s.Output
	if out == nil {
		out = io.Discard
	}
	return &run{e: e, name: name, jobID: s.JobID, gpus: gpuCount(s), reading: e.readingFile(s), out: out, log: e.log.With("job", s.JobID, "kube_job", name),
		said: map[string]bool{}, logDone: make(chan struct{}), decided: make(chan struct{})}
}

// onPod follows the run's pod: its container's start (the log stream),
// its end (the exit), a container that cannot start, a pod the scheduler
// cannot place.
func (r *run) onPod(p *corev1.Pod, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exit != nil {
		return
	}
	if r.pod != p.Name {
		if r.podLive || gone {
			return // another pod while the followed one lives, or an old one's end
		}
		r.pod = p.Name // the first pod, or a replacement
	}
	r.podLive = !gone
	if cs := jobContainer(p); cs != nil {
		switch st := cs.State; {
		case st.Terminated != nil:
			t := st.Terminated
			code := int(t.ExitCode)
			if code == 0 && t.Signal != 0 {
				code = 128 + int(t.Signal)
			}
			if startErrors[t.Reason] {
				r.say(fmt.Sprintf("greenq: the container could not start: %s: %s", t.Reason, t.Message))
			}
			r.startLogs()
			if d := disruption(p); d != "" && code != 0 && !r.signalled {
				r.say("greenq: the cluster stopped the pod: " + d)
				r.decide(executor.Exit{Code: -1, Err: fmt.Errorf("%w: kubernetes pod %s: %s", executor.ErrLost, p.Name, d)})
				return
			}
			r.decide(executor.Exit{Code: code})
			return
		case st.Waiting != nil && fatalWaiting[st.Waiting.Reason]:
			w := st.Waiting
			r.say(fmt.Sprintf("greenq: the container cannot start: %s: %s", w.Reason, w.Message))
			r.decide(executor.Exit{Code: -1, Err: fmt.Errorf("kubernetes pod %s cannot start its container: %s: %s", p.Name, w.Reason, w.Message)})
			go r.remove(metav1.DeletePropagationBackground)
			return
		case st.Running != nil:
			r.startLogs()
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			r.say("greenq: waiting for a node: " + c.Message)
		}
	}
	switch {
	case gone && !r.signalled:
		// Not greenq's doing: a node that went, a forced deletion.
		err := r.lost("its pod %s was deleted before it reported an exit status", p.Name)
		if d := disruption(p); d != "" {
			err = fmt.Errorf("%w: %s", err, d)
		}
		r.decide(executor.Exit{Code: -1, Err: fmt.Errorf("%w: %w", executor.ErrLost, err)})
	case gone && r.jobEnded:
		r.decide(executor.Exit{Code: -1, Err: r.lost("its pod %s was deleted before it reported an exit status", p.Name)})
	}
}

// disruption is why the cluster stopped the pod (preemption, eviction, a
// node's taint or shutdown), or "".
func disruption(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// onJob follows the run's Job: a Job that ends without a pod to report
// ends the run.
func (r *run) onJob(j *batchv1.Job, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exit != nil {
		return
	}
	r.jobGone = r.jobGone || gone
	ended := gone || j.DeletionTimestamp != nil || (j.Spec.Suspend != nil && *j.Spec.Suspend)
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobFailed || c.Type == batchv1.JobComplete) && c.Status == corev1.ConditionTrue {
			ended = true
			if c.Type == batchv1.JobFailed {
				r.jobFailure = c.Reason + ": " + c.Message
			}
		}
	}
	r.jobEnded = r.jobEnded || ended
	if r.jobEnded && !r.podLive {
		r.endWithoutPod()
	}
}

// endWithoutPod ends a run whose Job has ended while no pod is known,
// once the API confirms there is none: the pod informer may lag behind
// the Job's. A pod it finds reports through its own events. r.mu is held.
func (r *run) endWithoutPod() {
	if r.confirming {
		return
	}
	r.confirming = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		l, err := r.e.client.CoreV1().Pods(r.e.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{LabelRun: r.name}.String()})
		r.mu.Lock()
		defer r.mu.Unlock()
		r.confirming = false
		if r.exit != nil || r.podLive {
			return
		}
		if err == nil {
			for _, p := range l.Items {
				if p.Labels[LabelRun] == r.name {
					return
				}
			}
		}
		r.decide(executor.Exit{Code: -1, Err: r.lost("it ended without a pod reporting an exit status")})
	}()
}

// lost is the error of a run whose exit is unknown. r.mu is held.
func (r *run) lost(format string, args ...any) error {
	err := fmt.Errorf("kubernetes Job %s/%s: "+format, append([]any{r.e.ns, r.name}, args...)...)
	if r.jobFailure != "" {
		err = fmt.Errorf("%w (Job failed: %s)", err, r.jobFailure)
	}
	return err
}

// say writes a line of greenq's into the job's output, once. r.mu is held.
func (r *run) say(line string) {
	if r.said[line] {
		return
	}
	r.said[line] = true
	fmt.Fprintln(r.out, line)
}

// decide sets the run's exit. r.mu is held.
func (r *run) decide(e executor.Exit) {
	if r.exit == nil {
		r.exit = &e
		close(r.decided)
	}
}

// startLogs copies the followed pod's log into the output, once. r.mu is
// held.
func (r *run) startLogs() {
	if r.logging {
		return
	}
	r.logging = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancelLogs = cancel
	pod := r.pod
	go func() {
		defer close(r.logDone)
		rc, err := r.e.cfg.Logs(ctx, r.e.ns, pod, ContainerName)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(r.out, "greenq: cannot read the log of pod %s: %v\n", pod, err)
			}
			return
		}
		defer rc.Close()
		if _, err := io.Copy(r.out, rc); err != nil && ctx.Err() == nil {
			fmt.Fprintf(r.out, "greenq: the log of pod %s broke off: %v\n", pod, err)
		}
	}()
}

// Wait implements executor.Process: it waits for the exit and the rest of
// the log, then deletes the run's Job.
func (r *run) Wait() executor.Exit {
	<-r.decided
	r.mu.Lock()
	logging, exit := r.logging, *r.exit
	r.mu.Unlock()
	if logging {
		select {
		case <-r.logDone:
		case <-time.After(r.e.cfg.LogDrain):
			r.log.Warn("the pod's log did not end; the rest is lost", "after", r.e.cfg.LogDrain)
			r.cancelLogs()
			<-r.logDone
		}
		r.cancelLogs()
	}
	r.remove(metav1.DeletePropagationBackground)
	r.e.forget(r.name)
	exit.Energy = r.energy()
	return exit
}

// energy is greenq meter's reading of the run, where it wrote one.
func (r *run) energy() *executor.Reading {
	if r.reading == "" {
		return nil
	}
	b, err := os.ReadFile(r.reading)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("read the meter's reading", "err", err)
		}
		return nil
	}
	var m executor.Reading
	if err := json.Unmarshal(b, &m); err != nil {
		r.log.Warn("unreadable meter reading", "err", err)
		return nil
	}
	return &m
}

// remove deletes the run's Job (and so its pods), unless it is gone.
func (r *run) remove(policy metav1.DeletionPropagation) {
	r.mu.Lock()
	gone := r.jobGone
	r.mu.Unlock()
	if gone {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	err := r.e.client.BatchV1().Jobs(r.e.ns).Delete(ctx, r.name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Warn("delete the Job (the cluster removes it after its TTL)", "err", err)
	}
}

// ended reports whether the run's exit is known: signals are then no-ops.
func (r *run) ended() bool {
	select {
	case <-r.decided:
		return true
	default:
		return false
	}
}

// Signal implements executor.Process. SIGTERM deletes the Job with
// foreground propagation: the kubelet sends SIGTERM, and SIGKILL after
// the pod's grace. SIGKILL deletes the pods with a grace of one second.
// Other signals cannot reach a pod (that would take pods/exec and a kill
// in the image) and are refused.
func (r *run) Signal(sig syscall.Signal) error {
	if r.ended() {
		return nil
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		r.markSignalled()
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	jobs := r.e.client.BatchV1().Jobs(r.e.ns)
	switch sig {
	case syscall.SIGTERM:
		fg := metav1.DeletePropagationForeground
		return ignoreNotFound(jobs.Delete(ctx, r.name, metav1.DeleteOptions{PropagationPolicy: &fg}), "delete Job")
	case syscall.SIGKILL:
		pods := r.e.client.CoreV1().Pods(r.e.ns)
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: labels.Set{LabelRun: r.name}.String()})
		if err != nil {
			return fmt.Errorf("kill: list pods of Job %s: %w", r.name, err)
		}
		var errs []error
		for _, p := range list.Items {
			if p.Labels[LabelRun] != r.name {
				continue
			}
			errs = append(errs, ignoreNotFound(pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(killGrace))}), "kill: delete pod"))
		}
		bg := metav1.DeletePropagationBackground
		errs = append(errs, ignoreNotFound(jobs.Delete(ctx, r.name, metav1.DeleteOptions{PropagationPolicy: &bg}), "kill: delete Job"))
		return errors.Join(errs...)
	default:
		return fmt.Errorf("the kubernetes executor cannot send %v to a pod (only SIGTERM, a pause and SIGKILL)", sig)
	}
}

// Pause implements executor.Pauser: it suspends the Job, and the Job
// controller stops the pod (SIGTERM, the pod's grace, SIGKILL). The
// suspended Job is deleted once the pod has ended; the job's next segment
// is a new Job, with that segment's environment.
func (r *run) Pause() error {
	if r.ended() {
		return nil
	}
	r.markSignalled()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	_, err := r.e.client.BatchV1().Jobs(r.e.ns).Patch(ctx, r.name, types.MergePatchType,
		[]byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{})
	return ignoreNotFound(err, "suspend Job")
}

func (r *run) markSignalled() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signalled = true
}

func ignoreNotFound(err error, what string) error {
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// jobContainer is the status of the pod's job container, or nil.
func jobContainer(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == ContainerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}
