package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// This file holds submission: validation against the configured regions
// and workers, the duration estimate, idempotency and the create script.

// Submit validates req (greenq.SubmitRequest.Normalize; *greenq.Error with
// CodeInvalidArgument naming the field) and stores one pending job per
// trial. A sweep (Trials N > 1) gives N jobs sharing a new Group id and the
// deadline, with Trial 1..N. With req.Key set, a second submission of the
// same tenant, key and body returns the jobs of the first instead of new
// ones; the same key with a different body is CodeConflict naming key.
// A job needing more GPUs than the largest worker of every allowed region
// offers (greenq.Region.MaxGPUsPerWorker, or the largest worker seen there
// within WorkerMemory) is CodeInvalidArgument naming gpus; a region nothing
// is known about takes any size.
// Either every job is stored or none is; a full Redis gives CodeUnavailable.
func (s *Store) Submit(ctx context.Context, tenant string, req greenq.SubmitRequest) ([]*greenq.Job, error) {
	sub, err := s.SubmitJSON(ctx, tenant, req)
	return sub.Jobs, err
}

// Submitted is what one submission stored, or found stored before.
type Submitted struct {
	// Jobs are the submission's jobs, one per trial.
	Jobs []*greenq.Job
	// JSON is each new job's encoding as stored: encoding/json's, without
	// HTML escaping or a trailing newline, the bytes an HTTP API writes.
	// Nil for an earlier submission's jobs.
	JSON [][]byte
	// Existing is set when the idempotency key was used before with the
	// same body: Jobs are that submission's, nothing new was stored.
	Existing bool
}

// SubmitJSON is Submit that also returns each new job's JSON as stored, so
// an HTTP API need not encode the jobs a second time, and says whether the
// jobs are an earlier submission's.
func (s *Store) SubmitJSON(ctx context.Context, tenant string, req greenq.SubmitRequest) (Submitted, error) {
	fingerprint := requestFingerprint(req) // the body as sent, before defaults
	now := s.now()
	deadline, err := req.Normalize(now, s.names)
	if err != nil {
		return Submitted{}, err
	}
	if req.Key != "" {
		js, err := s.rdb.Get(ctx, s.k.idem(tenant, req.Key)).Result()
		if err == nil {
			return s.existing(ctx, js, fingerprint)
		}
		if !errors.Is(err, redis.Nil) {
			return Submitted{}, redisErr("submit", err)
		}
	}
	sub, err := s.build(ctx, tenant, req, fingerprint, deadline, now)
	if err != nil {
		return Submitted{}, err
	}
	s.prov.Plan(ctx, now, sub.jobs)
	if err := sub.encode(); err != nil {
		return Submitted{}, err
	}
	keys := []string{s.k.job("x"), s.k.all(), s.k.tenant(tenant), s.k.group(sub.group), s.k.state(greenq.StatePending), s.k.deadline()}
	if sub.idemKey != "" {
		keys[0] = sub.idemKey
	}
	args := []any{b2s(sub.idemKey != ""), sub.idemTTL(now).Milliseconds(), sub.record(), b2s(sub.group != ""), tenant}
	for i, j := range sub.jobs {
		keys = append(keys, s.k.job(j.ID))
		args = append(args, j.ID, sub.json[i], ceilMilli(j.Deadline))
	}
	prior, err := createScript.Run(ctx, s.rdb, keys, args...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		s.wake(ctx, wakePlan)
		return Submitted{Jobs: sub.jobs, JSON: sub.json}, nil
	case err != nil:
		return Submitted{}, redisErr("submit", err)
	}
	// Another submission with this key won the race.
	return s.existing(ctx, prior, fingerprint)
}

// submission is one request's jobs, built and ready to store.
type submission struct {
	fingerprint string
	idemKey     string // "" without an idempotency key
	deadline    time.Time
	group       string
	jobs        []*greenq.Job
	json        [][]byte // each job's encoding, once encoded
}

// build makes the jobs of req (normalised, due by deadline) at now,
// without plans: it refuses a job no allowed region's workers can hold or
// whose price cap no region meets, and picks the duration estimate.
func (s *Store) build(ctx context.Context, tenant string, req greenq.SubmitRequest, fingerprint string, deadline, now time.Time) (*submission, error) {
	if err := s.checkFits(ctx, req.GPUs, req.Regions); err != nil {
		return nil, err
	}
	if err := greenq.CheckPriceCap(req.MaxPriceUSDPerGPUHour, req.Regions, s.regions); err != nil {
		return nil, err
	}
	est, src, powerW, err := s.estimate(ctx, tenant, req, deadline.Sub(now))
	if err != nil {
		return nil, err
	}
	sub := &submission{fingerprint: fingerprint, deadline: deadline, jobs: make([]*greenq.Job, req.Trials)}
	if req.Key != "" {
		sub.idemKey = s.k.idem(tenant, req.Key)
	}
	if req.Trials > 1 {
		sub.group = ids.next(now)
	}
	utc := now.UTC()
	for i := range sub.jobs {
		j := &greenq.Job{
			ID: ids.next(now), Name: req.Name, Kind: req.Kind, State: greenq.StatePending,
			Tenant: tenant, Key: req.Key, Command: req.Command,
			SubmittedAt: utc, UpdatedAt: utc, Deadline: deadline.UTC(),
			DurationEstimateS: est, GPUs: req.GPUs, Regions: req.Regions, HomeRegion: req.HomeRegion,
			Interruptible: req.Interruptible, Group: sub.group, Tags: req.Tags,
			MaxPriceUSDPerGPUHour: req.MaxPriceUSDPerGPUHour, PowerW: powerW,
			FunctionalUnit: req.FunctionalUnit, EstimateSource: src, JobSpec: req.JobSpec,
		}
		if sub.group != "" {
			j.Trial = i + 1
		}
		sub.jobs[i] = j
	}
	return sub, nil
}

// estimate returns the run time (whole seconds), its source and the power
// per GPU of a job of req due window after submit: the user's, else the
// name's measured runs, else a default that fits the deadline (the plan's
// reason says it was assumed).
func (s *Store) estimate(ctx context.Context, tenant string, req greenq.SubmitRequest, window time.Duration) (int64, string, float64, error) {
	if req.DurationEstimateS > 0 {
		return req.DurationEstimateS, greenq.EstimateUser, req.PowerW, nil
	}
	est, src, powerW := int64(greenq.DefaultDurationWithin(window)/time.Second), greenq.EstimateDefault, req.PowerW
	if req.Name == "" {
		return est, src, powerW, nil
	}
	m, ok, err := s.Measurement(ctx, tenant, req.Name)
	if err != nil {
		return 0, "", 0, fmt.Errorf("submit: %w", err)
	}
	if ok && m.DurationS > 0 {
		est, src = int64(math.Ceil(m.DurationS)), greenq.EstimateMeasured
		if powerW == 0 && m.EnergyKWh > 0 && m.GPUs > 0 {
			powerW = math.Min(10000, m.EnergyKWh*1000/(float64(m.GPUs)*m.DurationS/3600))
		}
	}
	return est, src, powerW, nil
}

// encode fills sub.json with each job's encoding: encoding/json's, without
// HTML escaping or a trailing newline.
func (sub *submission) encode() error {
	sub.json = make([][]byte, len(sub.jobs))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, j := range sub.jobs {
		buf.Reset()
		if err := enc.Encode(j); err != nil {
			return fmt.Errorf("submit: encode job: %w", err)
		}
		sub.json[i] = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
	return nil
}

// record is the idempotency record sub's key holds.
func (sub *submission) record() []byte {
	ids := make([]string, len(sub.jobs))
	for i, j := range sub.jobs {
		ids[i] = j.ID
	}
	b, _ := json.Marshal(idemRecord{Fingerprint: sub.fingerprint, IDs: ids})
	return b
}

// idemTTL is how long sub's idempotency key lives from now.
func (sub *submission) idemTTL(now time.Time) time.Duration { return sub.deadline.Sub(now) + idemGrace }

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// idemRecord is what an idempotency key holds: the jobs its submission
// stored and a fingerprint of that submission's body.
type idemRecord struct {
	Fingerprint string   `json:"fp"`
	IDs         []string `json:"ids"`
}

// requestFingerprint identifies a submission's body as the user sent it
// (before defaults are filled), so a retry matches and a different job
// under the same key does not. Maps encode with sorted keys.
func requestFingerprint(req greenq.SubmitRequest) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// existing loads the jobs an earlier submission with the same key stored,
// or refuses a body other than that submission's.
func (s *Store) existing(ctx context.Context, raw, fingerprint string) (Submitted, error) {
	var rec idemRecord
	if strings.HasPrefix(raw, "[") {
		// Written before records had a fingerprint: a bare id list.
		rec.Fingerprint = fingerprint
		if err := json.Unmarshal([]byte(raw), &rec.IDs); err != nil {
			return Submitted{}, fmt.Errorf("submit: decode idempotency record: %w", err)
		}
	} else if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Submitted{}, fmt.Errorf("submit: decode idempotency record: %w", err)
	}
	if rec.Fingerprint != fingerprint {
		return Submitted{}, &greenq.Error{Code: greenq.CodeConflict, Field: "key",
			Message: fmt.Sprintf("was used before for a different job (%s); reuse a key only to retry the same submission", strings.Join(rec.IDs, ", "))}
	}
	rows, err := s.loadMany(ctx, rec.IDs)
	if err != nil {
		return Submitted{}, fmt.Errorf("submit: %w", err)
	}
	out := make([]*greenq.Job, len(rows))
	for i, r := range rows {
		out[i] = r.job
	}
	return Submitted{Jobs: out, Existing: true}, nil
}
