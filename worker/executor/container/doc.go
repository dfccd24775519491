// Package container runs a job's command in its OCI image through the
// worker's container engine, podman or docker, as `ENGINE run --rm --init`:
// the job's environment through a private env file (never on a command
// line, where other users could read it in ps), its GPUs passed by CDI
// (--device nvidia.com/gpu=N) or docker's --gpus, its workdir, checkpoint
// and output directories mounted at the same paths, as the job's user.
// Signals go through `ENGINE kill --signal`, so SIGTERM, grace and SIGKILL
// reach the job inside the container, not just the engine's client.
//
// The engine runs with the worker's environment less its secrets: only
// PATH, HOME, the XDG and CONTAINERS_/DOCKER_ variables it reads.
package container
