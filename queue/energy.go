package queue

// This file holds the job token: a credential a worker mints for one run
// of one job, with which `greenq meter`, wrapping the job's command where
// a cluster runs it (a Slurm node, a pod), posts the run's energy reading
// to the API (POST /v1/jobs/{id}/energy). The worker takes the reading
// when the run ends (TakeEnergy), which also revokes the token.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/greenq/greenq"
)

// JobTokenPrefix begins every job token, so that the API tells one from an
// API token without a lookup (and refuses it for everything but posting
// its job's reading).
const JobTokenPrefix = "greenq-job-"

// IsJobToken reports whether tok has the form of a job token.
func IsJobToken(tok string) bool { return strings.HasPrefix(tok, JobTokenPrefix) }

// energyKey holds a job's token (its SHA-256) and the reading posted with
// it; tokenKey maps a token's SHA-256 to its job. Both share the records'
// hash tag, so the post script runs on one Cluster slot with the job.
func (s *Store) energyKey(id string) string { return s.k.tag + ":energy:" + id }
func (s *Store) tokenKey(sum string) string { return s.k.tag + ":jobtoken:" + sum }
func tokenSum(tok string) string            { b := sha256.Sum256([]byte(tok)); return hex.EncodeToString(b[:]) }
func errToken(format string, a ...any) error {
	return greenq.Errorf(greenq.CodeUnauthenticated, format, a...)
}

// mintScript binds a new token to a job, revoking its earlier one. It
// uses only commands the worker's Redis user has (deployments/redis).
//
// KEYS: the job's energy hash, the new token's key, the old token's key.
// ARGV: new token SHA-256, job id, ttl in seconds.
var mintScript = redis.NewScript(`
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HSET', KEYS[1], 'token', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return false
`)

// MintJobToken returns a new token for job id, valid for ttl or until
// TakeEnergy, whichever comes first; it replaces the job's earlier token
// (a paused job's next run gets a new one). Only the token's SHA-256 is
// stored.
func (s *Store) MintJobToken(ctx context.Context, id string, ttl time.Duration) (string, error) {
	if id == "" || ttl <= 0 {
		return "", fmt.Errorf("mint job token: need a job id and a positive ttl, got %q, %s", id, ttl)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := JobTokenPrefix + hex.EncodeToString(b[:])
	sum := tokenSum(tok)
	old, err := s.rdb.HGet(ctx, s.energyKey(id), "token").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", redisErr("mint job token", err)
	}
	ttlS := max(int64(ttl.Round(time.Second)/time.Second), 1)
	err = mintScript.Run(ctx, s.rdb, []string{s.energyKey(id), s.tokenKey(sum), s.tokenKey(old)}, sum, id, ttlS).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", redisErr("mint job token", err)
	}
	return tok, nil
}

// postEnergyScript stores a reading for the job a token is bound to, once,
// while the job runs.
//
// KEYS: token → job, the job's energy hash, the job's record.
// ARGV: token SHA-256, job id, reading JSON.
// Returns "ok", "unknown" (no such token, or replaced), "other:<job>" (the
// token is another job's), "posted" (a reading is there) or
// "state:<state>" (the job is not running).
var postEnergyScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if not owner then return 'unknown' end
if owner ~= ARGV[2] then return 'other:' .. owner end
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then return 'unknown' end
if redis.call('HEXISTS', KEYS[2], 'reading') == 1 then return 'posted' end
local st = redis.call('HGET', KEYS[3], 'state')
if st ~= 'running' then return 'state:' .. tostring(st or 'gone') end
redis.call('HSET', KEYS[2], 'reading', ARGV[3])
return 'ok'
`)

// PostEnergy stores reading r for job id, posted with token tok. It
// accepts one reading per token, while the job runs. Errors (*greenq.Error):
// CodeInvalidArgument naming the field for a reading no meter writes
// (greenq.EnergyReading.Validate); CodeUnauthenticated for a token that is
// unknown, expired or replaced; CodeForbidden for another job's token;
// CodeConflict for a second reading or a job that is not running.
func (s *Store) PostEnergy(ctx context.Context, id, tok string, r greenq.EnergyReading) error {
	if !IsJobToken(tok) {
		return errToken("not a job token")
	}
	if err := r.Validate(); err != nil {
		return err
	}
	js, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("post energy: encode: %w", err)
	}
	sum := tokenSum(tok)
	res, err := postEnergyScript.Run(ctx, s.rdb, []string{s.tokenKey(sum), s.energyKey(id), s.k.job(id)}, sum, id, js).Text()
	if err != nil {
		return redisErr("post energy", err)
	}
	switch {
	case res == "ok":
		return nil
	case res == "unknown":
		return errToken("the job token is not valid (expired, or replaced by a later run's)")
	case strings.HasPrefix(res, "other:"):
		return greenq.Errorf(greenq.CodeForbidden, "this job token is job %s's: it may post that job's reading only, not job %s's",
			strings.TrimPrefix(res, "other:"), id)
	case res == "posted":
		return greenq.Errorf(greenq.CodeConflict, "job %s's reading was posted already: a token posts one reading", id)
	default:
		return greenq.Errorf(greenq.CodeConflict, "job %s is %s: a reading is taken only while the job runs", id, strings.TrimPrefix(res, "state:"))
	}
}

// takeEnergyScript returns a job's posted reading ("" for none) and
// deletes it and the job's token, at once: a post either lands before
// and is returned, or is refused.
//
// KEYS: the job's energy hash, its token's key (may be any unused key).
var takeEnergyScript = redis.NewScript(`
local r = redis.call('HGET', KEYS[1], 'reading')
redis.call('DEL', KEYS[1], KEYS[2])
return r or ''
`)

// TakeEnergy returns the reading posted for job id (nil when none was) and
// revokes the job's token.
func (s *Store) TakeEnergy(ctx context.Context, id string) (*greenq.EnergyReading, error) {
	sum, err := s.rdb.HGet(ctx, s.energyKey(id), "token").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("take energy", err)
	}
	js, err := takeEnergyScript.Run(ctx, s.rdb, []string{s.energyKey(id), s.tokenKey(sum)}).Text()
	if err != nil {
		return nil, redisErr("take energy", err)
	}
	if js == "" {
		return nil, nil
	}
	var r greenq.EnergyReading
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return nil, fmt.Errorf("take energy: decode job %s's reading: %w", id, err)
	}
	return &r, nil
}
