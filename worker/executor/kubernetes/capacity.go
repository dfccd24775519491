package kubernetes

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/greenq/greenq/worker/executor"
)

// Capacity is the cluster's GPUs, node by node.
type Capacity struct {
	// Nodes are the nodes that offer GPUs and take pods (schedulable and
	// ready), by name.
	Nodes []NodeGPUs
}

// NodeGPUs is one node's GPUs.
type NodeGPUs struct {
	Name string
	// Allocatable is the node's allocatable nvidia.com/gpu.
	Allocatable int64
	// Requested is what the pods bound to the node and not yet ended
	// request (any namespace, greenq's or not).
	Requested int64
}

// Free is the node's GPUs no pod holds.
func (n NodeGPUs) Free() int64 { return max(n.Allocatable-n.Requested, 0) }

// Free is the cluster's GPUs no pod holds.
func (c Capacity) Free() int64 {
	var n int64
	for _, node := range c.Nodes {
		n += node.Free()
	}
	return n
}

// Total is the GPUs of all the nodes, free or not.
func (c Capacity) Total() int64 {
	var n int64
	for _, node := range c.Nodes {
		n += node.Allocatable
	}
	return n
}

// Largest is the most GPUs one node offers (a pod cannot span nodes).
func (c Capacity) Largest() int64 {
	var n int64
	for _, node := range c.Nodes {
		n = max(n, node.Allocatable)
	}
	return n
}

// LargestFree is the most free GPUs on one node: the largest job that
// could start now.
func (c Capacity) LargestFree() int64 {
	var n int64
	for _, node := range c.Nodes {
		n = max(n, node.Free())
	}
	return n
}

// listPage is how many objects a capacity list asks for at once.
const listPage = 500

// Capacity reads the cluster's GPUs now: every schedulable, ready node's
// allocatable nvidia.com/gpu, less what the pods bound to it request. It
// needs list on nodes and on pods in every namespace.
func (e *Executor) Capacity(ctx context.Context) (Capacity, error) {
	byNode := map[string]*NodeGPUs{}
	var nodes []corev1.Node
	for cont := ""; ; {
		l, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: listPage, Continue: cont})
		if err != nil {
			return Capacity{}, fmt.Errorf("capacity: list nodes: %w", err)
		}
		nodes = append(nodes, l.Items...)
		if cont = l.Continue; cont == "" {
			break
		}
	}
	for _, n := range nodes {
		q, ok := n.Status.Allocatable[GPUResource]
		if !ok || q.Value() <= 0 || n.Spec.Unschedulable || !ready(n) {
			continue
		}
		byNode[n.Name] = &NodeGPUs{Name: n.Name, Allocatable: q.Value()}
	}
	for cont := ""; ; {
		l, err := e.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: listPage, Continue: cont,
			FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
		if err != nil {
			return Capacity{}, fmt.Errorf("capacity: list pods: %w", err)
		}
		for i := range l.Items {
			p := &l.Items[i]
			if n := byNode[p.Spec.NodeName]; n != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				n.Requested += podGPUs(p)
			}
		}
		if cont = l.Continue; cont == "" {
			break
		}
	}
	c := Capacity{}
	for _, n := range byNode {
		c.Nodes = append(c.Nodes, *n)
	}
	slices.SortFunc(c.Nodes, func(a, b NodeGPUs) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return c, nil
}

// GPUCapacity implements executor.Capacity: the cluster's free GPUs
// plus the ones this executor's runs hold or wait for (Busy), the largest
// node, and all the GPUs of the nodes counted.
func (e *Executor) GPUCapacity(ctx context.Context) (executor.GPUCapacity, error) {
	c, err := e.Capacity(ctx)
	if err != nil {
		return executor.GPUCapacity{}, err
	}
	busy := 0
	e.mu.Lock()
	for _, r := range e.runs {
		busy += r.gpus
	}
	e.mu.Unlock()
	return executor.GPUCapacity{Offered: int(c.Free()) + busy, Busy: busy, Largest: int(c.Largest()), Total: int(c.Total())}, nil
}

func ready(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podGPUs is what the scheduler counts for a pod: the larger of its
// containers' sum and its largest init container (a sidecar, an init
// container that keeps running, adds to both), plus its overhead. An
// extended resource's request is its limit where only the limit is set.
func podGPUs(p *corev1.Pod) int64 {
	var sum, initMax, sidecars int64
	for _, c := range p.Spec.Containers {
		sum += gpus(c.Resources)
	}
	for _, c := range p.Spec.InitContainers {
		n := gpus(c.Resources)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars += n
			continue
		}
		initMax = max(initMax, sidecars+n)
	}
	total := max(sum+sidecars, initMax)
	if q, ok := p.Spec.Overhead[GPUResource]; ok {
		total += q.Value()
	}
	return total
}

func gpus(r corev1.ResourceRequirements) int64 {
	if q, ok := r.Requests[GPUResource]; ok {
		return q.Value()
	}
	if q, ok := r.Limits[GPUResource]; ok {
		return q.Value()
	}
	return 0
}
