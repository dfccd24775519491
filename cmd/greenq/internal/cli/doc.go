// Package cli is greenq's command line: one cobra command per verb. Client
// commands speak HTTP to the API; server, worker and dev start the stack
// (package stack); simulate runs the back-test locally.
package cli
