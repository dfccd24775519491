package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/policy"
	"github.com/redis/go-redis/v9"
)

// Config configures a Store.
type Config struct {
	// Prefix starts every Redis key and channel greenq writes. Default
	// "greenq". Several greenq installations may share one Redis with
	// different prefixes.
	Prefix string
	// Regions are the configured regional pools; submissions may name only
	// these. May be empty for a store used only by workers.
	Regions []greenq.Region
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the store's warnings. Default: discard.
	Logger *slog.Logger
	// LogBytes bounds what is kept of each job's output: all of it up to
	// LogBytes; beyond, the first half as written and the latest half, with
	// a line "… N bytes cut …" between them (see Log). Only writers (the
	// workers' stores) use it. Default DefaultLogBytes (1 MiB).
	LogBytes int
	// Policy is the planner configuration for the provisional plan a job
	// gets at submit; it should match the server planner's. Default: the
	// policy defaults.
	Policy policy.Config
}

// DefaultLogBytes is Config.LogBytes's default: 1 MiB, half head, half
// tail.
const DefaultLogBytes = 1 << 20

// idemGrace is how long an idempotency key outlives its jobs' deadline.
const idemGrace = 24 * time.Hour

// maxCASRetries bounds the compare-and-set loop of one transition; each
// retry means another writer changed the job in between.
const maxCASRetries = 32

// Store keeps job records, their state machine and the shared state of
// server replicas and workers in Redis. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	k       keys
	regions []greenq.Region
	names   []string
	now     func() time.Time
	log     *slog.Logger
	logHead int // bytes of output kept from the start
	logTail int // bytes of the latest output kept
	policy  policy.Config
	cache   seriesCache
	batcher planBatcher

	wmu    sync.Mutex      // guards wbusy, wagain
	wbusy  map[string]bool // a wake publish of this kind is in flight
	wagain map[string]bool // and another was asked for meanwhile
}

// NewStore returns a store over rdb (a single server, Sentinel or Cluster
// client). It validates cfg; it does not contact Redis (see Ping).
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("new store: redis client is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "greenq"
	}
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("new store: Prefix: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogBytes == 0 {
		cfg.LogBytes = DefaultLogBytes
	}
	if cfg.LogBytes < 2 {
		return nil, fmt.Errorf("new store: LogBytes: must be at least 2, got %d", cfg.LogBytes)
	}
	s := &Store{rdb: rdb, k: newKeys(cfg.Prefix), now: cfg.Now, logHead: cfg.LogBytes / 2,
		logTail: cfg.LogBytes - cfg.LogBytes/2, policy: cfg.Policy,
		log: cfg.Logger.With("component", "queue"), wbusy: map[string]bool{}, wagain: map[string]bool{}}
	for i, r := range cfg.Regions {
		if r.Name == "" {
			return nil, fmt.Errorf("new store: Regions[%d].Name: is empty", i)
		}
		if slices.Contains(s.names, r.Name) {
			return nil, fmt.Errorf("new store: Regions[%d].Name: %q appears twice", i, r.Name)
		}
		s.names = append(s.names, r.Name)
		s.regions = append(s.regions, r)
	}
	return s, nil
}

// Ping checks that Redis answers and serves data: it fails (CodeUnavailable)
// while Redis is unreachable or still LOADING its dataset after a restart.
func (s *Store) Ping(ctx context.Context) error {
	// PING is answered even while loading; a read is not.
	if err := s.rdb.Get(ctx, s.k.fence()).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("ping redis", err)
	}
	return nil
}

// row is a job record as stored: the job plus the fields only the store
// reads.
type row struct {
	job  *greenq.Job
	ver  string // compare-and-set version
	rel  int    // releases reserved so far (asynq task id suffix)
	resv bool   // a release is under way: enqueued or about to be
}

// errNoChange tells update that fn changed nothing worth writing.
var errNoChange = errors.New("no change")

// load reads one job record.
func (s *Store) load(ctx context.Context, id string) (*row, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	vals, err := s.rdb.HMGet(ctx, s.k.job(id), "json", "v", "rel", "resv").Result()
	if err != nil {
		return nil, redisErr("load job", err)
	}
	return decodeRow(id, vals)
}

func decodeRow(id string, vals []any) (*row, error) {
	js, _ := vals[0].(string)
	if js == "" {
		return nil, notFound(id)
	}
	r := &row{job: new(greenq.Job)}
	if err := json.Unmarshal([]byte(js), r.job); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	r.ver, _ = vals[1].(string)
	if s, ok := vals[2].(string); ok {
		r.rel, _ = strconv.Atoi(s)
	}
	if s, ok := vals[3].(string); ok {
		r.resv = s == "1"
	}
	return r, nil
}

// loadMany reads the records of ids in one round trip; missing ids are
// skipped (an index may briefly name a job that is gone).
func (s *Store) loadMany(ctx context.Context, ids []string) ([]*row, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.k.job(id), "json", "v", "rel", "resv")
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("load jobs", err)
	}
	out := make([]*row, 0, len(ids))
	for i, c := range cmds {
		r, err := decodeRow(ids[i], c.Val())
		if errors.Is(err, greenq.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// update applies fn to job id and writes the result if nobody changed the
// job meanwhile, retrying from a fresh read otherwise. fn may return
// errNoChange to skip the write, or any other error to abort.
func (s *Store) update(ctx context.Context, id string, fn func(r *row) error) (*row, error) {
	for range maxCASRetries {
		r, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		old := r.job.State
		if err := fn(r); err != nil {
			if errors.Is(err, errNoChange) {
				return r, nil
			}
			return r, err
		}
		ok, err := s.write(ctx, id, r, old)
		if err != nil {
			return nil, err
		}
		if ok {
			return r, nil
		}
	}
	return nil, greenq.Errorf(greenq.CodeUnavailable, "job %s: too many concurrent updates, try again", id)
}

// write stores r if its version is unchanged; false means another writer
// won and the caller should re-read.
func (s *Store) write(ctx context.Context, id string, r *row, old greenq.State) (bool, error) {
	keys, args, err := s.writeArgs(ctx, id, r, old)
	if err != nil {
		return false, err
	}
	res, err := writeScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, redisErr("write job", err)
	}
	return writeResult(id, r, res)
}

// writeArgs returns the keys and arguments of writeScript storing r.
func (s *Store) writeArgs(ctx context.Context, id string, r *row, old greenq.State) ([]string, []any, error) {
	j := r.job
	ni, oi := stateIndex(j.State), stateIndex(old)
	if ni < 0 {
		return nil, nil, fmt.Errorf("write job %s: unknown state %q", id, j.State)
	}
	if oi < 0 {
		oi = ni
	}
	js, err := json.Marshal(j)
	if err != nil {
		return nil, nil, fmt.Errorf("encode job %s: %w", id, err)
	}
	relScore, dlScore := "", ""
	if j.State == greenq.StatePlanned && j.Plan != nil && !j.Plan.Held {
		if j.Plan.Urgent {
			relScore = "0"
		} else {
			relScore = strconv.FormatInt(ceilMilli(j.Plan.Start), 10)
		}
	}
	if j.State == greenq.StatePending || j.State == greenq.StatePlanned {
		dlScore = strconv.FormatInt(ceilMilli(j.Deadline), 10)
	}
	keys := append([]string{s.k.job(id), s.k.fence(), s.k.release(), s.k.deadline()}, s.k.stateKeys()...)
	return keys, []any{r.ver, js, ni + 1, oi + 1, id, relScore, dlScore,
		fenceArg(ctx), r.rel, b2s(r.resv), string(j.State)}, nil
}

// writeResult interprets writeScript's answer for r: true when written
// (r's version then moves on), false when another writer changed the job.
func writeResult(id string, r *row, res int) (bool, error) {
	switch res {
	case 1:
		v, _ := strconv.Atoi(r.ver)
		r.ver = strconv.Itoa(v + 1)
		return true, nil
	case -1:
		return false, fmt.Errorf("write job %s: %w", id, ErrFenced)
	case -2:
		return false, notFound(id)
	}
	return false, nil
}

// writeMany is write for many jobs in one pipeline: olds[i] is rows[i]'s
// state as read. Each job is still its own compare-and-set; the results
// say per job what write would have (true written, false changed
// meanwhile, or an error such as not found or ErrFenced).
func (s *Store) writeMany(ctx context.Context, rows []*row, olds []greenq.State) ([]bool, []error) {
	oks, errs := make([]bool, len(rows)), make([]error, len(rows))
	cmds := make([]*redis.Cmd, len(rows))
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(rows))
	for i, r := range rows {
		calls[i].keys, calls[i].args, errs[i] = s.writeArgs(ctx, r.job.ID, r, olds[i])
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			if errs[i] == nil {
				cmds[i] = writeScript.EvalSha(ctx, p, c.keys, c.args...)
			}
		}
		return nil
	})
	for i, c := range cmds {
		if c == nil {
			continue
		}
		res, err := c.Int()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// The script is not cached yet (or Redis restarted): Run loads it.
			res, err = writeScript.Run(ctx, s.rdb, calls[i].keys, calls[i].args...).Int()
		}
		if err != nil {
			errs[i] = redisErr("write job", err)
			continue
		}
		oks[i], errs[i] = writeResult(rows[i].job.ID, rows[i], res)
	}
	return oks, errs
}

// ceilMilli returns t in Unix milliseconds, rounded up so that a score
// reached by the clock never lies before t.
func ceilMilli(t time.Time) int64 {
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return ms
}

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms) }

// transition checks the state machine for r's job moving to next.
func transition(j *greenq.Job, next greenq.State) error {
	if !greenq.CanTransition(j.State, next) {
		return conflict("job %s is %s; it cannot become %s", j.ID, j.State, next)
	}
	return nil
}

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
	fingerprint := requestFingerprint(req)
	now := s.now()
	deadline, err := req.Normalize(now, s.names)
	if err != nil {
		return Submitted{}, err
	}
	var idemKey string
	if req.Key != "" {
		idemKey = s.k.idem(tenant, req.Key)
		js, err := s.rdb.Get(ctx, idemKey).Result()
		if err == nil {
			return s.existing(ctx, js, fingerprint)
		}
		if !errors.Is(err, redis.Nil) {
			return Submitted{}, redisErr("submit", err)
		}
	}
	if err := s.checkFits(ctx, req.GPUs, req.Regions); err != nil {
		return Submitted{}, err
	}
	if err := greenq.CheckPriceCap(req.MaxPriceUSDPerGPUHour, req.Regions, s.regions); err != nil {
		return Submitted{}, err
	}
	est, src, powerW := req.DurationEstimateS, "user", req.PowerW
	if est <= 0 {
		est, src = int64(greenq.DefaultDuration/time.Second), "default"
		if req.Name != "" {
			m, ok, err := s.Measurement(ctx, tenant, req.Name)
			if err != nil {
				return Submitted{}, fmt.Errorf("submit: %w", err)
			}
			if ok && m.DurationS > 0 {
				est, src = int64(math.Ceil(m.DurationS)), "measured"
				if powerW == 0 && m.EnergyKWh > 0 && m.GPUs > 0 {
					powerW = math.Min(10000, m.EnergyKWh*1000/(float64(m.GPUs)*m.DurationS/3600))
				}
			}
		}
	}
	group := ""
	if req.Trials > 1 {
		group = ids.next(now)
	}
	utc := now.UTC()
	jobs := make([]*greenq.Job, req.Trials)
	keys := []string{s.k.job("x"), s.k.all(), s.k.tenant(tenant), s.k.group(group), s.k.state(greenq.StatePending), s.k.deadline()}
	if idemKey != "" {
		keys[0] = idemKey
	}
	jobIDs := make([]string, req.Trials)
	args := []any{b2s(idemKey != ""), (deadline.Sub(now) + idemGrace).Milliseconds(), "", b2s(group != ""), tenant}
	for i := range jobs {
		j := &greenq.Job{
			ID: ids.next(now), Name: req.Name, Kind: req.Kind, State: greenq.StatePending,
			Tenant: tenant, Key: req.Key, Command: req.Command,
			SubmittedAt: utc, UpdatedAt: utc, Deadline: deadline.UTC(),
			DurationEstimateS: est, GPUs: req.GPUs, Regions: req.Regions, HomeRegion: req.HomeRegion,
			Interruptible: req.Interruptible, Group: group, Tags: req.Tags,
			MaxPriceUSDPerGPUHour: req.MaxPriceUSDPerGPUHour, PowerW: powerW,
			FunctionalUnit: req.FunctionalUnit, EstimateSource: src, JobSpec: req.JobSpec,
		}
		if group != "" {
			j.Trial = i + 1
		}
		jobs[i], jobIDs[i] = j, j.ID
	}
	s.provisionalPlans(ctx, now, jobs)
	encoded := make([][]byte, len(jobs))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, j := range jobs {
		buf.Reset()
		if err := enc.Encode(j); err != nil {
			return Submitted{}, fmt.Errorf("submit: encode job: %w", err)
		}
		encoded[i] = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		keys = append(keys, s.k.job(j.ID))
		args = append(args, j.ID, encoded[i], ceilMilli(j.Deadline))
	}
	record, _ := json.Marshal(idemRecord{Fingerprint: fingerprint, IDs: jobIDs})
	args[2] = record
	prior, err := createScript.Run(ctx, s.rdb, keys, args...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		s.wake(ctx, wakePlan)
		return Submitted{Jobs: jobs, JSON: encoded}, nil
	case err != nil:
		return Submitted{}, redisErr("submit", err)
	}
	// Another submission with this key won the race.
	return s.existing(ctx, prior, fingerprint)
}

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

// Get returns job id. Tenant "" (an admin) sees every job; a job of another
// tenant is reported as not found (wrapping greenq.ErrNotFound), like one
// that does not exist.
func (s *Store) Get(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	r, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if tenant != "" && r.job.Tenant != tenant {
		return nil, notFound(id)
	}
	return r.job, nil
}

// Cancel cancels job id in any non-final state and announces it on the
// cancel channel (CancelEvents) so a worker running it stops. A job already
// final gives CodeConflict; another tenant's job, not found.
func (s *Store) Cancel(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if tenant != "" && j.Tenant != tenant {
			return notFound(id)
		}
		if j.State.Final() {
			return conflict("job %s is already %s", id, j.State)
		}
		if err := transition(j, greenq.StateCancelled); err != nil {
			return err
		}
		j.State, j.UpdatedAt = greenq.StateCancelled, s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	if err := s.rdb.Publish(ctx, s.k.cancelChannel(), id).Err(); err != nil {
		// The record says cancelled; a worker learns it when it next reads
		// the job.
		s.log.Warn("announce cancel", "job", id, "err", err)
	}
	return r.job, nil
}

// Start records that a worker starts job id: released (or running, when
// asynq hands the job of a dead worker to another) becomes running, the
// attempt is counted and run.Attempt set. A job in any other state, such as
// cancelled, or a task of an earlier release gives CodeConflict: the worker
// must not run it. A job still running on another live worker gives
// CodeUnavailable: the task is to be retried later.
func (s *Store) Start(ctx context.Context, id string, run greenq.Run) (*greenq.Job, error) {
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		if j.State != greenq.StateReleased && j.State != greenq.StateRunning {
			return conflict("job %s is %s; only a released or running job can start", id, j.State)
		}
		if run.Release > 0 && run.Release != r.rel {
			return conflict("job %s: the task of release %d is stale (the job is on release %d)", id, run.Release, r.rel)
		}
		if j.State == greenq.StateRunning && j.Run != nil && j.Run.Worker != run.Worker {
			// asynq hands a task to another worker when its lease lapses:
			// the first worker died, or its clock is far behind. Only the
			// first case may start the job again.
			live, err := s.workerLive(ctx, j.Run.Worker)
			if err != nil {
				return err
			}
			if live {
				// Unavailable, not conflict: the task must be retried later,
				// once that worker has finished the job or been seen dead.
				return greenq.Errorf(greenq.CodeUnavailable, "job %s is running on worker %s, which is alive; try again later", id, j.Run.Worker)
			}
		}
		now := s.now().UTC()
		j.Attempts++
		run := run
		run.Attempt = j.Attempts
		if run.StartedAt.IsZero() {
			run.StartedAt = now
		}
		run.FinishedAt, run.ExitCode = nil, nil
		j.Run, j.State, j.UpdatedAt, j.Error = &run, greenq.StateRunning, now, ""
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	return r.job, nil
}

// Finish records the end of a run. A running job moves to f.State
// (succeeded, failed, cancelled, or planned when an interruptible job
// pauses at the end of a segment); f.Segment joins Segments unless a
// segment with the same start is already there, so a repeated report never
// counts energy twice; the receipt, exit code and finish time are set. On
// success the run's duration and energy are remembered for the job's name
// (Measurement). Repeating a Finish that already took effect changes
// nothing and is not an error. If the job was cancelled meanwhile, the
// segment and receipt are still recorded (the energy was spent) and Finish
// returns the job with a CodeConflict error.
func (s *Store) Finish(ctx context.Context, id string, f FinishRequest) (*greenq.Job, error) {
	switch f.State {
	case greenq.StateSucceeded, greenq.StateFailed, greenq.StateCancelled, greenq.StatePlanned:
	default:
		return nil, greenq.Invalid("state", "%q is not a state a run can finish in (succeeded, failed, cancelled, or planned when paused)", f.State)
	}
	var (
		measured        bool
		cancelledBefore bool
	)
	r, err := s.update(ctx, id, func(r *row) error {
		j := r.job
		measured, cancelledBefore = false, false
		now := s.now().UTC()
		newSeg := addSegment(j, f.Segment)
		switch {
		case j.State == greenq.StateRunning:
			if err := transition(j, f.State); err != nil {
				return err
			}
			end := now
			if !f.Segment.End.IsZero() {
				end = f.Segment.End.UTC()
			}
			if j.Run == nil {
				j.Run = &greenq.Run{}
			}
			code := f.ExitCode
			j.Run.FinishedAt, j.Run.ExitCode = &end, &code
			j.State, j.Error = f.State, f.Error
			if f.Receipt != nil {
				j.Receipt = f.Receipt
			}
			if f.Outputs != nil {
				j.Outputs = f.Outputs
			}
			if f.State == greenq.StatePlanned {
				pause(j, end)
			}
			measured = f.State == greenq.StateSucceeded
		case j.State == f.State && j.State.Final(), j.State == greenq.StateCancelled:
			cancelledBefore = j.State == greenq.StateCancelled && f.State != greenq.StateCancelled
			if f.Receipt != nil && j.Receipt == nil {
				j.Receipt = f.Receipt
			} else if !newSeg {
				return errNoChange
			}
		default:
			return conflict("job %s is %s; only a running job can finish", id, j.State)
		}
		j.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	s.markRestatable(ctx, r.job)
	if measured && r.job.Name != "" {
		if err := s.recordMeasurement(ctx, r.job); err != nil {
			s.log.Warn("record measurement", "job", id, "name", r.job.Name, "err", err)
		}
	}
	if r.job.State == greenq.StatePlanned {
		s.wake(ctx, wakePlan)
	}
	if cancelledBefore {
		return r.job, conflict("job %s was cancelled while it ran; its run was recorded", id)
	}
	return r.job, nil
}

// addSegment appends seg unless it is empty or a segment with the same
// start is already recorded; it reports whether it appended.
func addSegment(j *greenq.Job, seg greenq.RunSegment) bool {
	if seg.Start.IsZero() {
		return false
	}
	for _, have := range j.Segments {
		if have.Start.Equal(seg.Start) {
			return false
		}
	}
	seg.Start, seg.End = seg.Start.UTC(), seg.End.UTC()
	j.Segments = append(j.Segments, seg)
	return true
}

// pause keeps the windows of j's plan that lie after end: the next one
// becomes the start the release loop waits for. With none left, the plan
// is dropped and the planner finds a window for the rest of the job.
func pause(j *greenq.Job, end time.Time) {
	if j.Plan == nil {
		return
	}
	var rest []greenq.Window
	for _, w := range j.Plan.Segments {
		if !w.Start.Before(end) {
			rest = append(rest, w)
		}
	}
	if len(rest) == 0 {
		j.Plan = nil
		return
	}
	p := *j.Plan
	p.Segments, p.Start, p.Urgent = rest, rest[0].Start, false
	j.Plan = &p
}

// doneDuration is how long j has already run over its recorded segments.
func doneDuration(j *greenq.Job) time.Duration {
	var d time.Duration
	for _, s := range j.Segments {
		if s.End.After(s.Start) {
			d += s.End.Sub(s.Start)
		}
	}
	return d
}
