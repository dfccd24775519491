package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
)

// MaxBatch is the most job requests one POST /v1/jobs {"jobs": [...]} may
// carry; their trials together may not exceed greenq.MaxTrials.
const MaxBatch = 1000

// submitBody is one job's fields, or {"jobs": [...]} for a batch.
type submitBody struct {
	greenq.SubmitRequest
	Jobs []greenq.SubmitRequest `json:"jobs,omitempty"`
}

// JobList is a page of jobs (GET /v1/jobs) or the jobs one submit created.
type JobList struct {
	Jobs []*greenq.Job `json:"jobs"`
	// NextCursor fetches the next page; empty at the end.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, p principal) error {
	var b submitBody
	if err := decodeJSON(w, r, s.cfg.BodyLimit, &b); err != nil {
		return err
	}
	if b.Jobs == nil {
		sub, err := s.submitOne(r, p.tenant, b.SubmitRequest)
		if err != nil {
			return fmt.Errorf("submit job: %w", err)
		}
		// A retry under the same idempotency key creates nothing: 200.
		status := http.StatusCreated
		if sub.Existing {
			status = http.StatusOK
		}
		if len(sub.Jobs) == 1 && b.Trials <= 1 {
			w.Header().Set("Location", "/v1/jobs/"+url.PathEscape(sub.Jobs[0].ID))
			if sub.JSON != nil {
				writeRaw(w, status, sub.JSON[0])
				return nil
			}
			writeJSON(w, status, sub.Jobs[0])
			return nil
		}
		writeJobList(w, status, sub.Jobs, sub.JSON)
		return nil
	}
	if !reflect.DeepEqual(b.SubmitRequest, greenq.SubmitRequest{}) {
		return greenq.Invalid("jobs", "give either one job's fields or a jobs array, not both")
	}
	return s.storeBatch(w, r, p, b.Jobs)
}

// batchBody is POST /v1/jobs:batch's body.
type batchBody struct {
	Jobs []greenq.SubmitRequest `json:"jobs"`
}

// submitBatch serves POST /v1/jobs:batch: {"jobs": [...]}, as POST
// /v1/jobs takes it.
func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request, p principal) error {
	var b batchBody
	if err := decodeJSON(w, r, s.cfg.BodyLimit, &b); err != nil {
		return err
	}
	if b.Jobs == nil {
		return greenq.Invalid("jobs", "is required: send {\"jobs\": [job, …]}")
	}
	return s.storeBatch(w, r, p, b.Jobs)
}

// batchWorkers is how many of a batch's jobs are stored at once: their
// Redis round trips overlap, and the store plans jobs that arrive together
// in one planner call.
const batchWorkers = 32

// storeBatch validates every request of a batch, then stores them and
// answers their jobs in request order. Nothing is stored when any request
// is refused (the error names jobs[i].field): a store that takes a batch
// at once (batchSubmitter) stores all of it or none; with another, should
// storing one fail after validation (Redis unavailable, a job larger than
// any worker), the jobs of the batch already stored are cancelled and the
// error names the job that failed.
func (s *Server) storeBatch(w http.ResponseWriter, r *http.Request, p principal, reqs []greenq.SubmitRequest) error {
	if err := s.validateBatch(r, reqs); err != nil {
		return err
	}
	if bs, ok := s.store.(batchSubmitter); ok {
		subs, err := bs.SubmitMany(r.Context(), p.tenant, reqs)
		if be := (*queue.BatchError)(nil); errors.As(err, &be) {
			return fmt.Errorf("submit job %d of %d: %w", be.Index+1, len(reqs), prefixField(be.Err, fmt.Sprintf("jobs[%d].", be.Index)))
		}
		if err != nil {
			return fmt.Errorf("submit %d jobs: %w", len(reqs), err)
		}
		writeSubmitted(w, subs)
		return nil
	}
	subs := make([]queue.Submitted, len(reqs))
	errs := make([]error, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(batchWorkers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				subs[i], errs[i] = s.submitOne(r, p.tenant, reqs[i])
			}
		}()
	}
	for i := range reqs {
		if r.Context().Err() != nil {
			errs[i] = r.Context().Err()
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		s.cancelStored(r, p, subs)
		return fmt.Errorf("submit job %d of %d: %w", i+1, len(reqs), prefixField(err, fmt.Sprintf("jobs[%d].", i)))
	}
	writeSubmitted(w, subs)
	return nil
}

// batchSubmitter stores a whole batch at once, all or nothing
// (*queue.Store does): a refused request is a *queue.BatchError.
type batchSubmitter interface {
	SubmitMany(ctx context.Context, tenant string, reqs []greenq.SubmitRequest) ([]queue.Submitted, error)
}

// writeSubmitted answers 201 with the jobs of subs, in order.
func writeSubmitted(w http.ResponseWriter, subs []queue.Submitted) {
	var (
		all    []*greenq.Job
		allRaw [][]byte
		hasRaw = true
	)
	for _, sub := range subs {
		all = append(all, sub.Jobs...)
		allRaw = append(allRaw, sub.JSON...)
		hasRaw = hasRaw && sub.JSON != nil
	}
	if !hasRaw {
		allRaw = nil
	}
	writeJobList(w, http.StatusCreated, all, allRaw)
}

// cancelStored cancels the new jobs of a batch that failed part way, so
// that none of it runs. Jobs an idempotency key found stored before are
// left alone.
func (s *Server) cancelStored(r *http.Request, p principal, subs []queue.Submitted) {
	ctx := context.WithoutCancel(r.Context())
	for _, sub := range subs {
		if sub.Existing {
			continue
		}
		for _, j := range sub.Jobs {
			if _, err := s.store.Cancel(ctx, p.tenant, j.ID); err != nil {
				s.log.WarnContext(ctx, "cancel a job of a failed batch", "job", j.ID, "err", err)
			}
		}
	}
}

// jsonSubmitter is a store that hands back the JSON of the jobs it stored
// and says whether they were stored before (*queue.Store does), so the
// answer is not encoded a second time.
type jsonSubmitter interface {
	SubmitJSON(ctx context.Context, tenant string, req greenq.SubmitRequest) (queue.Submitted, error)
}

// submitOne stores one request's jobs and returns them, with their JSON when
// the store has it (nil otherwise).
func (s *Server) submitOne(r *http.Request, tenant string, req greenq.SubmitRequest) (queue.Submitted, error) {
	if js, ok := s.store.(jsonSubmitter); ok {
		sub, err := js.SubmitJSON(r.Context(), tenant, req)
		if len(sub.JSON) != len(sub.Jobs) {
			sub.JSON = nil
		}
		return sub, err
	}
	jobs, err := s.store.Submit(r.Context(), tenant, req)
	return queue.Submitted{Jobs: jobs}, err
}

// writeJobList answers status with JobList{Jobs: jobs}, from raw (each
// job's JSON, as writeJSON would encode it) when given.
func writeJobList(w http.ResponseWriter, status int, jobs []*greenq.Job, raw [][]byte) {
	if raw == nil || len(raw) != len(jobs) {
		writeJSON(w, status, JobList{Jobs: nonNil(jobs)})
		return
	}
	n := len(`{"jobs":[]}`) + len(raw)
	for _, b := range raw {
		n += len(b)
	}
	out := make([]byte, 0, n+1)
	out = append(out, `{"jobs":[`...)
	for i, b := range raw {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = append(out, "]}"...)
	writeRaw(w, status, out)
}

// validateBatch checks every request before any is stored, so a bad one
// leaves nothing behind.
func (s *Server) validateBatch(r *http.Request, reqs []greenq.SubmitRequest) error {
	if len(reqs) == 0 {
		return greenq.Invalid("jobs", "is empty")
	}
	if len(reqs) > MaxBatch {
		return greenq.Invalid("jobs", "has %d entries, more than %d", len(reqs), MaxBatch)
	}
	regions, err := s.store.Regions(r.Context())
	if err != nil {
		return fmt.Errorf("list regions: %w", err)
	}
	names := make([]string, len(regions))
	for i, reg := range regions {
		names[i] = reg.Name
	}
	now := s.cfg.Now()
	total := 0
	for i, req := range reqs {
		c := req
		c.Regions = append([]string(nil), req.Regions...)
		if _, err := c.Normalize(now, names); err != nil {
			return prefixField(err, fmt.Sprintf("jobs[%d].", i))
		}
		// Regions carries each region's largest worker, so a job too large
		// for every allowed one is refused before anything is stored.
		if err := greenq.CheckFitsWorkers(c.GPUs, c.Regions, regions); err != nil {
			return prefixField(err, fmt.Sprintf("jobs[%d].", i))
		}
		if err := greenq.CheckPriceCap(c.MaxPriceUSDPerGPUHour, c.Regions, regions); err != nil {
			return prefixField(err, fmt.Sprintf("jobs[%d].", i))
		}
		total += c.Trials
	}
	if total > greenq.MaxTrials {
		return greenq.Invalid("jobs", "asks for %d jobs in all, more than %d", total, greenq.MaxTrials)
	}
	return nil
}

// prefixField returns err with its field under prefix (jobs[2].deadline).
func prefixField(err error, prefix string) error {
	e, ok := asError(err)
	if !ok || e.Field == "" {
		return err
	}
	return &greenq.Error{Code: e.Code, Message: e.Message, Field: prefix + e.Field}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := s.store.Get(r.Context(), p.scope(), id)
	if err != nil {
		return fmt.Errorf("get job %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := s.store.Cancel(r.Context(), p.scope(), id)
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func jobID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 128 || !utf8.ValidString(id) || strings.ContainsAny(id, "\x00/") {
		return "", greenq.Invalid("id", "is not a job id")
	}
	return id, nil
}

// listParams are the query parameters GET /v1/jobs accepts.
var listParams = []string{"state", "tag", "region", "group", "limit", "cursor", "tenant"}

func (s *Server) list(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	if err := onlyParams(q, listParams...); err != nil {
		return err
	}
	opts := queue.ListOptions{
		State:  greenq.State(q.Get("state")),
		Region: q.Get("region"),
		Group:  q.Get("group"),
		Cursor: q.Get("cursor"),
		Tenant: p.scope(),
	}
	if opts.State != "" && !opts.State.Valid() {
		return greenq.Invalid("state", "%q is not a job state (%s)", opts.State, statesList())
	}
	if t := q.Get("tenant"); t != "" {
		if !p.admin {
			return greenq.Invalid("tenant", "only an admin token may list other tenants")
		}
		opts.Tenant = t
	}
	for _, kv := range q["tag"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return greenq.Invalid("tag", "%q is not key=value", kv)
		}
		if opts.Tags == nil {
			opts.Tags = map[string]string{}
		}
		opts.Tags[k] = v
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return greenq.Invalid("limit", "must be an integer between 1 and 1000, got %q", l)
		}
		opts.Limit = n
	}
	jobs, next, err := s.store.List(r.Context(), opts)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	writeJSON(w, http.StatusOK, JobList{Jobs: nonNil(jobs), NextCursor: next})
	return nil
}

// onlyParams refuses query parameters other than names, so a typo is an
// error rather than a silently ignored filter.
func onlyParams(q url.Values, names ...string) error {
	for k := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return greenq.Invalid(k, "is not a known query parameter (known: %s)", strings.Join(names, ", "))
		}
	}
	return nil
}

func statesList() string {
	s := make([]string, len(greenq.States))
	for i, st := range greenq.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
