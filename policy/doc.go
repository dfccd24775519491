// Package policy is greenq's planner. It is pure: Plan takes jobs, each
// region's carbon series, prices and capacity, the slot and `now` as values
// and returns, for every job, a region and window (or run segments) with the
// expected emissions, cost, the run-now baseline, the alternatives it
// weighed and a reason people can read. It reads no clock, no Redis, no
// network and logs nothing; it imports only the standard library and
// package forecast.
//
// Each round lays every region on the slot grid once (per-slot intensity
// and price, their prefix sums, free GPUs), so scoring a window is a few
// loads; Plan's doc comment states the objective, the deadline rules, the
// capacity algorithm and what it guarantees. ReleaseAt is the release rule
// the server and the back-test share.
//
// # Capacity guarantee
//
// For a region with Capacity > 0 the planner keeps one free-GPU count per
// slot, Capacity minus every Busy usage overlapping the slot after now (one
// that ended by now holds nothing), over every slot a run starting by the
// last start slot can touch, however long the run: the longest job from
// that slot, a current plan, an urgent run from
// a job's earliest start (up to 2^22 slots; a slot past them counts as
// full, so nothing is planned there). A run holds every slot it overlaps
// at all, from its first to its last. No job that is not Urgent is planned
// into a slot without room for its GPUs after every other job planned
// there, and an Urgent job counts in full against the others over the
// slots the counts cover (past them nothing else is planned). A current
// plan in a bounded region that starts past the last start slot is planned
// again. A region with Capacity 0 is unbounded: its Busy usages are
// ignored.
//
// A job runs on one machine. A region whose machines are known
// (Region.Workers) is split into size classes, one per distinct machine
// size s, and keeps a count per class: the jobs of more GPUs than the next
// smaller size, which only machines of s GPUs or more can run, may together
// hold no more than those machines' GPUs. A job is planned only where every
// class it counts in has room; two 2-GPU workers are therefore no room for
// a 3-GPU job. A job needing more GPUs than a region's largest machine
// (Region.MaxJobGPUs, else the largest of Workers) is never planned there,
// and one that fits no allowed region gets no region at all. The classes
// are necessary conditions, not a packing: jobs that pass them may still
// not fit machine by machine (three 2-GPU jobs and two 3-GPU workers), and
// then wait on the worker for GPUs to free.
//
// # Cost
//
// A round costs O(jobs × allowed regions × start slots) to search, plus a
// sort of the jobs when some region is bounded; memory is linear in the
// jobs (under 1.2 KB allocated per job in the benchmarks). Without capacity
// limits jobs are planned in parallel; with them the decisions are made in
// order on one goroutine and the assignments (reasons, alternatives) are
// written in parallel.
package policy
