// Package slurm runs a job's command on a Slurm cluster, through Slurm's own
// commands: one greenq worker serves a whole partition.
//
// Start writes a batch script into a per-run directory under the spool
// (Config.Spool, a directory the worker and the nodes share) and submits
// it with `sbatch --parsable --export=NONE --nodes=1 --gres=gpu:N --time T
// --chdir DIR --output FILE` (plus --partition, --account, --signal=B:SIG@S
// for a job's warning, --uid/--gid for a job run as another user, and the
// cluster's container option for a job with an image). The job's
// environment never reaches a command line, Slurm's controller or the
// batch script: it is in a 0600 file beside the script, which the script
// reads and deletes as the job starts, after unsetting everything the
// node's login environment brought except Slurm's own variables
// (SLURM_*, CUDA_VISIBLE_DEVICES and the other device lists Slurm sets for
// the GPUs it allocated). The script then execs the command, wrapped in
// `greenq meter --out FILE --` where Config.Meter names a greenq binary
// the nodes can run, which measures the job's GPUs with NVML and the node's
// CPU with RAPL, with the worker's own metering code.
//
// Wait polls `scontrol show job -o ID` until the job reaches a final state
// and streams the output file into Spec.Output meanwhile. The exit status
// is Slurm's ExitCode (128+N for a job killed by signal N); TIMEOUT,
// OUT_OF_MEMORY and DEADLINE come back as errors saying so; NODE_FAIL,
// PREEMPTED, BOOT_FAIL, and a job Slurm requeued (which this package then
// cancels: its environment file is gone), wrap executor.ErrLost, so the
// worker plans the job again. The energy comes from the meter's reading,
// or from Slurm's ConsumedEnergy where the cluster accounts energy (sacct
// with an acct_gather_energy plugin), labelled as such in the receipt.
//
// Signal(SIGTERM) is `scancel --signal=TERM` to the batch step and its
// processes (to greenq meter alone when it wraps the command: it passes
// the signal on to the command's process group, so the job gets it once);
// Signal(SIGKILL) is `scancel --signal=KILL --full` and then `scancel`. A
// job still pending is simply cancelled. GPUCapacity reads `sinfo -N -O
// Gres,GresUsed` for the partition: the GPUs free on nodes that take jobs,
// plus those this executor's jobs hold, and the largest node.
package slurm
