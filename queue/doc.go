// Package queue is greenq's Redis layer: job records and their state
// machine, idempotent submit, cancel, logs, the normalised forecast series
// shared by server replicas, worker heartbeats (live capacity), run
// measurements, the leader lease, the re-planner that feeds package policy,
// and the release loop that moves each planned job onto its region's asynq
// queue when its window opens.
//
// # Records and atomicity
//
// A job is a hash holding its JSON (greenq.Job) plus a version for
// compare-and-set, its release counter and a release-in-progress flag.
// Indexes are sorted sets: every job, per tenant, per sweep group, per
// state (all by id, which sorts by creation time), the release schedule
// (planned start) and the deadline schedule (pending and planned jobs).
// Every change is one Lua script that checks the version (and, for the
// leader's writes, the fencing token), writes the record and moves its
// index entries, so no reader ever sees a job half-written and a failed
// submit (bad input, or Redis out of memory: CodeUnavailable) stores
// nothing. Transitions follow greenq.CanTransition; one that is not allowed
// is a *greenq.Error with CodeConflict.
//
// All keys of records, indexes, schedules, heartbeats, series and the lease
// share one hash tag, {prefix}, so those scripts run on Redis Cluster
// (which refuses scripts spanning slots) as on a single server or Sentinel.
// Each job's log, the bulky part, is keyed by the job's own tag ({id}) and
// so spreads over the cluster; logs are never written together with a
// record.
//
// # Planning and release
//
// One round (Planner.PlanOnce, planner.go, read top-down) walks: share the
// configured regions' facts (PUE, prices, embodied factor) with the workers
// (PublishRegions, SharedRegions, at most every 30 s), so receipts use what
// the plans used; read the pending and planned jobs through the planner's
// own job cache (the store answers versions, and records only for the jobs
// that changed); read the regions with live capacity and worker sizes, the
// released and running jobs (through a second cache, only when some region
// is bounded) and each region's series; hand them to the adapter (package
// planning, made from Config.Policy: the one planner configuration), which
// maps them onto package policy and its answer back onto plans; keep the
// plans that differ from what the jobs hold; and write those in one call as
// compare-and-set writes against the records read, which go back into the
// cache. Besides sharing the facts, the round reads only through roundReader
// and writes only through planWriter, the two interfaces the planner
// declares; a job released or being released meanwhile is never touched.
// Planner.Run repeats that on a cron schedule and whenever triggered;
// submissions and new forecasts on any replica trigger it through Redis
// pub/sub.
//
// Submit's provisional plan (planning.Provisional, over the configured
// regions and their cached series, without capacity) and Explain go through
// the same adapter, and the release schedule follows planning.ReleaseAt. A
// plan resting on a fallback carbon signal names it in greenq.Plan.Signal. A
// job with no window under its price cap is held: it stays pending with a
// held plan, is never released, and expires at its deadline saying why.
//
// Finish files a receipt that rests on forecast intensities for
// restating (RestateCandidates, Restate), which the server does once the
// provider's actuals for the run's hours arrive.
//
// Releaser.Run sleeps until the earliest planned start (or an urgent plan)
// and releases each due job: it claims a release number (idempotently),
// enqueues asynq task TaskTypeRun on SizeQueue(region, gpus) with task id
// "<job id>:<release number>", then marks the job released. A crash between
// the two steps leaves the claim in place, and the next round enqueues the
// same task id (asynq refuses the duplicate) and marks it; two loops racing
// enqueue one task. asynq's own scheduling (ProcessAt) is not used: its
// forwarder polls every 5 s and rounds to whole seconds, so it could start
// a task late or early. A job is never released before its planned start;
// jobs past their deadline without a start become expired.
//
// # Dispatch by size
//
// A job runs on one worker, so it is released onto a queue of its size: a
// 1-GPU job onto RegionQueue ("region:R"), an N-GPU one onto "region:R:gpus=N"
// (SizeQueue), and a worker of G GPUs serves its region's queues for
// 1…G GPUs, the largest first (WorkerQueues). So no job reaches a worker
// that cannot run it. Heartbeats carry each worker's size: the planner
// counts room per worker (policy.Region.Workers: GPUs on workers smaller
// than a job are no room for it), and the largest worker seen in a region
// within WorkerMemory, or its configured MaxGPUsPerWorker, bounds the jobs
// planned there and those Submit takes (a job larger than every allowed
// region's largest worker is refused naming gpus; a region nothing is
// known about takes any size).
//
// # Several replicas
//
// Run the planner and release loop under a Lease: only the leader runs
// them, and the context it hands over carries a fencing token that every
// planner and release write checks, so a leader that lost the lease
// without noticing cannot release or re-plan anything.
package queue
