// Package jobfiles keeps a job's checkpoints and outputs where every worker
// the job may run on can reach them: a directory on shared storage (used in
// place), or an object-store URL opened with gocloud.dev/blob (file://
// and s3:// here; s3:// also covers S3-compatible stores such as MinIO
// through its endpoint query parameters). For a URL the worker pulls the
// job's objects into a local directory before a run and pushes them back
// after it, mirroring deletions, so a job resumed in another region finds
// the checkpoint it saved.
package jobfiles
