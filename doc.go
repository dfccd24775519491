// Package greenq holds the domain types every part of greenq shares: the job
// record users and scripts see as JSON, its lifecycle states, and the error
// kinds that map to HTTP status codes and exit codes.
//
// It imports only the standard library. The planner lives in package policy,
// the carbon signal in package forecast, Redis in package queue, the job
// runner in package worker and HTTP in package api; cmd/greenq wires them.
package greenq
