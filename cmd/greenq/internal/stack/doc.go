// Package stack assembles greenq's long-running processes from their parts:
// the server (API, planner, release loop, forecast refresh under a leader
// lease), the worker, and the all-in-one dev stack on an embedded Redis.
// It is wiring only; behaviour lives in the packages it assembles.
package stack
