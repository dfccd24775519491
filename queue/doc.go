// Package queue is greenq's Redis layer: job records and their state
// machine, idempotent submit, cancel, logs, the normalised forecast series
// shared by server replicas, worker heartbeats (live capacity), the leader
// lease, the re-planner that feeds package policy, and the release loop that
// moves each planned job onto its region's asynq queue when its window opens.
//
// Every key of one job shares a Redis Cluster hash slot ({id} hash tags).
package queue
