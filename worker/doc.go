// Package worker runs the jobs released to one region: an asynq server that
// serves only that region's queues for the job sizes this worker can run
// (queue.WorkerQueues: 1…GPUs GPUs, the largest first), a handler that runs
// each job's argv in its own process group with the GPUs it assigns, and
// the measurements behind the job's carbon receipt. GPUs are handed out
// first come, first served, so small jobs cannot starve a large one; a task
// larger than the worker (released before size queues) is moved to its
// size queue rather than failed.
//
// A job's argv runs directly (no shell unless the user wrote one) through
// an executor (package executor: a process group here, or a container
// through podman or docker for a job with an image), with the GPUs it
// assigns from its pool, never shared. Its environment is built, never
// inherited (env.go): a minimal base, the operator's PassEnv, the job's env
// and secrets (resolved from SecretsDir), and greenq's variables
// (GREENQ_JOB_ID, GREENQ_REGION, GREENQ_TRIAL, GREENQ_OUTPUT_DIR,
// GREENQ_CONTROL_FILE, CUDA_VISIBLE_DEVICES, GREENQ_CHECKPOINT_DIR for
// interruptible jobs, GREENQ_FUNCTIONAL_UNITS_FILE). Checkpoints and outputs
// live where every worker can reach them (package jobfiles).
//
// Every stop — cancel, a passed deadline, the end of an interruptible job's
// planned segment, a drain — is SIGTERM, the job's grace, then SIGKILL; a
// job greenq paused is planned again whatever its exit code. Every outcome
// is recorded on the job, so the handler returns nil and asynq never runs
// a finished or cancelled job again; a worker that dies loses no job,
// because asynq's lease recovery hands the task to another worker and Start
// counts the attempt.
//
// Energy is measured, not guessed, wherever the machine allows:
//
//   - GPU: NVML (github.com/NVIDIA/go-nvml) total-energy counter read at start
//     and end ("nvml"), else power samples integrated over time
//     ("nvml-power-sampling"), else an estimate from the power limit or the
//     model's TDP times utilisation, or the configured per-GPU power
//     ("estimate"). NVML needs cgo: builds with CGO_ENABLED=0 estimate only.
//   - CPU and memory: RAPL counters under /sys/class/powercap, the job's
//     share by its CPU time against the machine's ("rapl"), else a configured
//     estimate ("estimate").
//
// Both run through Metering, on the worker's machine for its own jobs, and
// inside `greenq meter` where a cluster runs the job (a Slurm node): the
// executor hands that reading back (executor.Exit.Energy: a file greenq
// meter wrote, or the cluster's accounting), or greenq meter posts it to
// the API with the run's job token (Config.APIURL: the worker mints the
// token, bound to the job, and puts GREENQ_JOB_TOKEN and GREENQ_API_URL in
// the job's environment; it takes the posted reading when the run ends,
// which revokes the token). A measured posted reading comes first, then
// the executor's, then an estimated posted one; the receipt says where it
// was measured (EnergyMeter: worker, greenq-meter-api, greenq-meter,
// slurm, or none, with the GPUs estimated) and how (greenq.EnergySource).
//
// ComputeReceipt turns the measured energy and the region's stored carbon
// series into a receipt: gCO2e = kWh × PUE × intensity, the run-now
// baseline (the same energy at submit in the job's home region), the saving
// split into what waiting and what moving saved, the cost (GPU-hours run ×
// the price in force), and the Software Carbon Intensity (ISO/IEC 21031).
// PUE, prices and the embodied factor are the server's region
// configuration, read from Redis (facts.go); a worker's own configuration
// counts only until the server has shared one, and where it disagrees the
// worker logs so once. Restater, which the server runs after each forecast
// refresh, restates receipts written from forecasts once the provider's
// actuals for their hours arrive.
package worker
