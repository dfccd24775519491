package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/greenq/greenq"
)

// keys names every Redis key greenq writes under one prefix.
//
// Job records and every index over them share one hash tag ({prefix}) so a
// submit, a state transition and its index moves run in one Lua script on
// one Cluster slot: atomicity across record and indexes is what rules out
// half-written jobs. Logs, the bulky part (up to LogBytes each), are
// keyed by the job's own tag ({id}) so they spread over the cluster; they
// are never written in the same script as the record.
type keys struct {
	prefix string // e.g. "greenq"
	tag    string // e.g. "greenq:{greenq}"
}

func newKeys(prefix string) keys {
	return keys{prefix: prefix, tag: prefix + ":{" + prefix + "}"}
}

func validPrefix(p string) error {
	if p == "" || strings.ContainsAny(p, "{} \t\r\n") {
		return fmt.Errorf("prefix %q: must be non-empty without braces or spaces", p)
	}
	return nil
}

func (k keys) job(id string) string           { return k.tag + ":job:" + id }
func (k keys) log(id string) string           { return k.prefix + ":log:{" + id + "}" }
func (k keys) logTail(id string) string       { return k.prefix + ":log:{" + id + "}:tail" }
func (k keys) logMeta(id string) string       { return k.prefix + ":log:{" + id + "}:meta" }
func (k keys) all() string                    { return k.tag + ":jobs" }
func (k keys) tenant(t string) string         { return k.tag + ":tenant:" + t }
func (k keys) group(g string) string          { return k.tag + ":group:" + g }
func (k keys) state(s greenq.State) string    { return k.tag + ":state:" + string(s) }
func (k keys) release() string                { return k.tag + ":release" }
func (k keys) deadline() string               { return k.tag + ":deadline" }
func (k keys) fence() string                  { return k.tag + ":fence" }
func (k keys) lease(name string) string       { return k.tag + ":lease:" + name }
func (k keys) workers() string                { return k.tag + ":workers" }
func (k keys) workersExpiry() string          { return k.tag + ":workers:expiry" }
func (k keys) workersSeen() string            { return k.tag + ":workers:seen" }
func (k keys) series(region string) string    { return k.tag + ":series:" + region }
func (k keys) measurement(name string) string { return k.tag + ":measure:" + name }
func (k keys) regionFacts() string            { return k.tag + ":regions" }
func (k keys) restate() string                { return k.tag + ":restate" }
func (k keys) cancelChannel() string          { return k.prefix + ":cancel" }
func (k keys) wakeChannel() string            { return k.prefix + ":wake" }
func (k keys) pauseChannel() string           { return k.prefix + ":pause" }

// idem names the idempotency record of (tenant, key); hashed so any bytes
// in either make a safe, bounded key.
func (k keys) idem(tenant, key string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + key))
	return k.tag + ":idem:" + hex.EncodeToString(h[:16])
}

// stateKeys returns the state index keys in greenq.States order.
func (k keys) stateKeys() []string {
	out := make([]string, len(greenq.States))
	for i, s := range greenq.States {
		out[i] = k.state(s)
	}
	return out
}

// stateIndex returns s's position in greenq.States (-1 if unknown).
func stateIndex(s greenq.State) int {
	for i, v := range greenq.States {
		if v == s {
			return i
		}
	}
	return -1
}
