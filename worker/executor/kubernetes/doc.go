// Package kubernetes runs each job as a batch/v1 Job in one namespace of a
// Kubernetes cluster, through client-go: one greenq worker serves a whole
// cluster (greenq worker --executor kubernetes --kube-namespace N).
//
// A run's Job has one pod with one container, "job": the job's image (an
// image is required) with its argv as the container's args (the image's
// entrypoint stays, as with podman or docker run), its environment less
// what describes the worker's machine (PATH, HOME, USER,
// CUDA_VISIBLE_DEVICES: the image and the NVIDIA device plugin set those),
// its secrets as secretKeyRef into one Secret whose keys are greenq's
// secret names (the values never pass through the worker or the Job), an
// nvidia.com/gpu limit per GPU, the job's user, its grace as
// terminationGracePeriodSeconds and its deadline as activeDeadlineSeconds.
// backoffLimit is 0: greenq retries, not the Job controller. The pod mounts
// the executor's PersistentVolumeClaims, where the worker's work, output
// and checkpoint directories must be for the job to see them.
//
// Informers on the namespace's Jobs and pods (those labelled
// app.kubernetes.io/managed-by=greenq) follow each run: the container's
// termination gives the exit code, the pod's log stream (followed) is the
// job's output, and a container that cannot start (an image that cannot be
// pulled, a missing secret key) ends the run with the kubelet's reason.
//
// Stopping follows greenq's protocol: SIGTERM deletes the Job with
// foreground propagation (the kubelet sends SIGTERM and, after the grace,
// SIGKILL), a pause suspends it instead (Process.Pause: spec.suspend, and
// the Job controller stops the pod the same way), and SIGKILL deletes the
// pods with a grace of one second, so the kubelet kills at once and still
// reports the exit status. A run's Job is deleted once its exit and output
// are in. Other signals cannot reach a pod without exec rights and are
// refused.
//
// With Config.MeterImage (greenq worker --kube-meter-image, the worker's
// own image), each pod gets greenq from that image, copied by an init
// container ("greenq-meter") into an emptyDir at /greenq, and the job
// container runs /greenq/greenq meter --gpus 0…n-1 [--out FILE] -- argv:
// its GPUs are measured with NVML where they are. The reading comes back
// as Exit.Energy from Spec.ReadingFile where a volume holds it, and is
// posted to the API with the run's job token where the worker has one
// (worker.Config.APIURL). Without it, the job's GPU energy is estimated.
//
// Capacity reads the cluster's free GPUs: every schedulable, ready node's
// allocatable nvidia.com/gpu less what the pods bound to it request.
//
// The tests run the shared executortest suite against client-go's fake
// clientset, with reactors that play the Job controller, the garbage
// collector and the kubelet: pods appear, run the command on this machine,
// take signals, finish and fail.
package kubernetes
