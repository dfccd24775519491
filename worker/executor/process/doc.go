// Package process runs a job's command in its own process group on the
// worker's machine: signals reach every process the job starts, and the
// job's leader dies with the worker (Linux's parent-death signal), so a job
// asynq hands to another worker does not keep running here too.
package process
