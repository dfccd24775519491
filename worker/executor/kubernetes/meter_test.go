package kubernetes_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/kubernetes"
)

// With a meter image, the pod gets greenq from it (an init container into
// an emptyDir) and runs the job's command under greenq meter.
func TestMeteredJobObject(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns,
		Volumes:    []kubernetes.Volume{{Claim: "greenq-shared", Path: "/var/lib/greenq"}},
		MeterImage: "ghcr.io/greenq/greenq-worker:1.4", Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	spec := executor.Spec{JobID: "j1", Argv: []string{"python", "train.py"}, Image: "registry.example.com/ml/train:2.1",
		GPUCount: 2, ReadingFile: "/var/lib/greenq/run/greenq-run-1/reading.json"}
	_, err = e.Start(context.Background(), spec)
	require.NoError(t, err)
	ps := onlyJob(t, client).Spec.Template.Spec
	require.Equal(t, []corev1.Container{{
		Name: "greenq-meter", Image: "ghcr.io/greenq/greenq-worker:1.4",
		Command:      []string{"cp", "/usr/local/bin/greenq", "/greenq/greenq"},
		VolumeMounts: []corev1.VolumeMount{{Name: "greenq-meter", MountPath: "/greenq"}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
	}}, ps.InitContainers)
	size := resource.MustParse("256Mi")
	require.Contains(t, ps.Volumes, corev1.Volume{Name: "greenq-meter", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &size}}})
	c := ps.Containers[0]
	require.Equal(t, []string{"/greenq/greenq", "meter", "--gpus", "0,1", "--out", spec.ReadingFile, "--"}, c.Command,
		"the device plugin's GPUs are 0…n-1 in the container; the reading goes to the shared volume")
	require.Equal(t, spec.Argv, c.Args)
	require.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "greenq-meter", MountPath: "/greenq", ReadOnly: true})

	// A reading file no volume holds: the meter writes none (it posts,
	// or prints to the log).
	spec.JobID, spec.ReadingFile = "j2", "/tmp/not-shared/reading.json"
	client2 := fake.NewClientset()
	e2, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client2, Namespace: ns, MeterImage: "m:1", Logger: tlog(t)})
	require.NoError(t, err)
	defer e2.Close()
	_, err = e2.Start(context.Background(), spec)
	require.NoError(t, err)
	require.Equal(t, []string{"/greenq/greenq", "meter", "--gpus", "0,1", "--"}, onlyJob(t, client2).Spec.Template.Spec.Containers[0].Command)
}

// Without a meter image nothing changes: no init container, the image's
// entrypoint with argv.
func TestUnmeteredJobHasNoMeter(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	e, err := kubernetes.New(context.Background(), kubernetes.Config{Client: client, Namespace: ns, Logger: tlog(t)})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Start(context.Background(), executor.Spec{JobID: "j", Argv: []string{"true"}, Image: "i:1", ReadingFile: "/x/reading.json"})
	require.NoError(t, err)
	ps := onlyJob(t, client).Spec.Template.Spec
	require.Empty(t, ps.InitContainers)
	require.Empty(t, ps.Containers[0].Command)
}

// The reading the meter writes in the pod comes back in the run's Exit.
func TestMeterReadingComesBack(t *testing.T) {
	t.Parallel()
	shared := t.TempDir()
	bin, err := filepath.Abs("testdata/fake-greenq")
	require.NoError(t, err)
	c := newFakeCluster(t, ns)
	e := newExecutor(t, c, kubernetes.Config{Volumes: []kubernetes.Volume{{Claim: "shared", Path: shared}},
		MeterImage: "greenq-worker:test", MeterBinary: bin})
	p, err := e.Start(context.Background(), executor.Spec{JobID: "metered", Argv: []string{"sh", "-c", "echo hi; exit 3"},
		Image: "i:1", GPUCount: 1, ReadingFile: filepath.Join(shared, "reading.json")})
	require.NoError(t, err)
	exit := waitExit(t, p)
	require.NoError(t, exit.Err)
	require.Equal(t, 3, exit.Code)
	require.NotNil(t, exit.Energy)
	require.Equal(t, 0.125, exit.Energy.GPUKWh)
	require.Equal(t, "nvml", string(exit.Energy.Source))
	require.Equal(t, []int{0}, exit.Energy.GPUs)
	require.Equal(t, 3, exit.Energy.ExitCode)
}
