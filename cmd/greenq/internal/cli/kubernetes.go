package cli

import (
	"github.com/spf13/pflag"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/stack"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

// executorKubernetes runs each job as a batch/v1 Job (--executor).
const executorKubernetes = "kubernetes"

// kubeFlagNames are the flags only --executor kubernetes takes.
var kubeFlagNames = []string{"kube-namespace", "kubeconfig", "kube-secret", "kube-volume", "kube-meter-image"}

// kubeFlags are the Kubernetes executor's flags.
type kubeFlags struct {
	namespace, kubeconfig, secret string
	meterImage                    string
	volumes                       []string
	parsed                        []kubernetes.Volume
}

func (k *kubeFlags) flags(f *pflag.FlagSet) {
	f.StringVar(&k.namespace, "kube-namespace", "", "with --executor kubernetes: the namespace jobs run in, one batch/v1 Job per run (required)")
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "with --executor kubernetes: a kubeconfig file (default in-cluster, with the pod's service account)")
	f.StringVar(&k.secret, "kube-secret", kubernetes.DefaultSecretName, "with --executor kubernetes: the Secret in --kube-namespace whose keys are the jobs' secrets (--secret K=NAME reads key NAME)")
	f.StringVar(&k.meterImage, "kube-meter-image", "", "with --executor kubernetes: an image with greenq at "+kubernetes.DefaultMeterBinary+" (this worker's own image) from which each job's pod gets greenq, to run the job's command under greenq meter and measure its GPUs there; the command is then the job's argv, not the image's entrypoint with argv; \"none\" or empty: no meter, the GPUs are estimated")
	f.StringArrayVar(&k.volumes, "kube-volume", nil, "with --executor kubernetes: CLAIM:PATH[:ro], a PersistentVolumeClaim mounted at PATH in every job's pod, where the worker has it too (repeatable; the first writable one holds the run, work, output and checkpoint directories unless set)")
}

// refuse fails when a Kubernetes flag is given to another executor.
func (k *kubeFlags) refuse(f *pflag.FlagSet, executor string) error {
	for _, n := range kubeFlagNames {
		if f.Changed(n) {
			return greenq.Invalid(n, "--%s is for --executor kubernetes, not %s", n, executor)
		}
	}
	return nil
}

// check validates the flags of --executor kubernetes.
func (k *kubeFlags) check(f *pflag.FlagSet) error {
	if k.namespace == "" {
		return greenq.Invalid("kube-namespace", "is required with --executor kubernetes: the namespace jobs run in")
	}
	for _, n := range slurmFlags {
		if f.Changed(n) {
			return greenq.Invalid(n, "--%s is for --executor slurm", n)
		}
	}
	for _, n := range []string{"container-engine", "secrets-dir"} {
		if f.Changed(n) {
			return greenq.Invalid(n, "is for --executor process; with Kubernetes jobs run in their image, with secrets from --kube-secret")
		}
	}
	k.parsed = nil
	for _, s := range k.volumes {
		v, err := kubernetes.ParseVolume(s)
		if err != nil {
			return greenq.Invalid("kube-volume", "%v", err)
		}
		k.parsed = append(k.parsed, v)
	}
	return nil
}

// options is the stack's configuration of the executor.
func (k *kubeFlags) options() *stack.Kube {
	img := k.meterImage
	if img == "none" {
		img = ""
	}
	return &stack.Kube{Namespace: k.namespace, Kubeconfig: k.kubeconfig, SecretName: k.secret, Volumes: k.parsed, MeterImage: img}
}
