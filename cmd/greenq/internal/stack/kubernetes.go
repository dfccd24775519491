package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

// Kube configures the Kubernetes executor (greenq worker --executor
// kubernetes).
type Kube struct {
	// Namespace is where jobs run as batch/v1 Jobs. Required.
	Namespace string
	// Kubeconfig is a kubeconfig file; "" means in-cluster (the pod's
	// service account).
	Kubeconfig string
	// SecretName is the Secret whose keys are the jobs' secrets. Default
	// kubernetes.DefaultSecretName.
	SecretName string
	// Volumes are mounted into every job's pod; the first writable one
	// holds the run, work, output and checkpoint directories unless they
	// are set.
	Volumes []kubernetes.Volume
	// MeterImage runs each job under greenq meter (kubernetes.Config.MeterImage); "" none.
	MeterImage string
}

// kubeStartTimeout bounds connecting to the API server and the first
// list of Jobs, pods and nodes.
const kubeStartTimeout = 30 * time.Second

// setKubernetes makes the worker serve its region from a Kubernetes
// cluster: every job (it must have an image) becomes a Job in the
// namespace; the worker's size is the largest GPU node and, by default, it
// keeps as many jobs in flight as the cluster has GPUs.
func (w *Worker) setKubernetes(ctx context.Context, wc *worker.Config) error {
	k := w.Kube
	if k == nil || k.Namespace == "" {
		return greenq.Invalid("kube-namespace", "is required with --executor kubernetes")
	}
	client, err := kubeClientFor(k.Kubeconfig)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, kubeStartTimeout)
	defer cancel()
	ex, err := kubernetes.New(sctx, kubernetes.Config{Client: client, Namespace: k.Namespace, SecretName: k.SecretName,
		Volumes: k.Volumes, MeterImage: k.MeterImage, Logger: w.Logger})
	if err != nil {
		return fmt.Errorf("watch Jobs and pods in namespace %s: %w", k.Namespace, err)
	}
	gc, err := ex.GPUCapacity(sctx)
	if err != nil {
		ex.Close()
		return fmt.Errorf("read the cluster's GPUs (list nodes and pods): %w", err)
	}
	if wc.GPUs <= 0 {
		wc.GPUs = max(gc.Largest, 1)
	}
	if wc.Concurrency <= 0 {
		wc.Concurrency = max(gc.Total, wc.GPUs)
	}
	for _, v := range k.Volumes {
		if v.ReadOnly {
			continue
		}
		under := func(p *string, name string) {
			if *p == "" {
				*p = filepath.Join(v.Path, name)
			}
		}
		under(&wc.RunRoot, "run")
		under(&wc.WorkRoot, "work")
		under(&wc.OutputRoot, "outputs")
		under(&wc.CheckpointRoot, "checkpoints")
		break
	}
	if len(k.Volumes) == 0 {
		w.Logger.Warn("no --kube-volume: jobs see none of the worker's directories (control file, outputs, checkpoints)")
	}
	wc.Executor, wc.Containers = ex, ex
	w.Logger.Info("jobs run on Kubernetes", "namespace", k.Namespace, "secret", ex.SecretName(),
		"largest_node_gpus", gc.Largest, "cluster_gpus", gc.Total, "free_gpus", gc.Offered)
	return nil
}

// kubeClientFor is kubeClient; tests give a fake clientset.
var kubeClientFor = kubeClient

// kubeClient connects with kubeconfig, or in-cluster without one.
func kubeClient(kubeconfig string) (k8s.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, greenq.Invalid("kubeconfig", "%v", err)
		}
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		return nil, greenq.Invalid("kubeconfig", "not running in a Kubernetes pod (%v): give a kubeconfig file", err)
	}
	cfg.UserAgent = "greenq-worker"
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}
