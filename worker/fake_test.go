package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/queue"
)

// fakeStore is an in-memory Store with the queue's state rules for the
// calls the worker makes.
type fakeStore struct {
	mu       sync.Mutex
	jobs     map[string]*greenq.Job
	logs     map[string][]byte
	appends  map[string][]int // sizes of AppendLog calls
	series   map[string]forecast.Series
	finishes chan finishCall
	subs     []chan string // CancelEvents subscribers
	pauses   []chan string // PauseEvents subscribers
	beats    chan queue.WorkerInfo
	// skew is how far the server's clock is ahead of time.Now.
	skew time.Duration
	// tokens and posted are the job tokens minted and the readings
	// posted with them, by job.
	tokens map[string]string
	posted map[string]*greenq.EnergyReading
	// finishFails makes that many Finish calls fail as a Redis outage
	// would; finishTries records when each call came.
	finishFails int
	finishTries []time.Time
	// releasing makes that many Start calls find the job's release still
	// under way (queue.ErrReleasing); startTries records when each came.
	releasing  int
	startTries []time.Time
}

type finishCall struct {
	id string
	f  queue.FinishRequest
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{
		jobs: map[string]*greenq.Job{}, logs: map[string][]byte{}, appends: map[string][]int{},
		series:   map[string]forecast.Series{},
		finishes: make(chan finishCall, 16),
		beats:    make(chan queue.WorkerInfo, 16),
	}
}

func (s *fakeStore) ServerTime(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.skew), nil
}

func (s *fakeStore) put(j *greenq.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *j
	s.jobs[j.ID] = &cp
}

func (s *fakeStore) job(id string) greenq.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.jobs[id]
}

func (s *fakeStore) log(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.logs[id])
}

// cancel cancels a job as the queue does: record, then an event to every
// subscriber.
func (s *fakeStore) cancel(id string) {
	s.mu.Lock()
	s.jobs[id].State = greenq.StateCancelled
	subs := s.subs
	s.mu.Unlock()
	for _, c := range subs {
		c <- id
	}
}

func (s *fakeStore) Start(_ context.Context, id string, run greenq.Run) (*greenq.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, greenq.ErrNotFound
	}
	s.startTries = append(s.startTries, time.Now())
	if s.releasing > 0 {
		s.releasing--
		return nil, fmt.Errorf("start job %s: %w", id, queue.ErrReleasing)
	}
	if j.State != greenq.StateReleased && j.State != greenq.StateRunning {
		return nil, greenq.Errorf(greenq.CodeConflict, "job %s is %s", id, j.State)
	}
	j.State = greenq.StateRunning
	j.Attempts++
	run.Attempt = j.Attempts
	j.Run = &run
	cp := *j
	return &cp, nil
}

func (s *fakeStore) AppendLog(_ context.Context, id string, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[id] = append(s.logs[id], p...)
	s.appends[id] = append(s.appends[id], len(p))
	return nil
}

// AppendLogCut records a loss as queue.CutMarker would show it.
func (s *fakeStore) AppendLogCut(_ context.Context, id string, p []byte, lost int64, q []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[id] = append(append(append(s.logs[id], p...), queue.CutMarker(lost)...), q...)
	s.appends[id] = append(s.appends[id], len(p)+len(q))
	return nil
}

func (s *fakeStore) Finish(_ context.Context, id string, f queue.FinishRequest) (*greenq.Job, error) {
	s.mu.Lock()
	s.finishTries = append(s.finishTries, time.Now())
	if s.finishFails > 0 {
		s.finishFails--
		s.mu.Unlock()
		return nil, greenq.Errorf(greenq.CodeUnavailable, "the job store is unreachable")
	}
	j, ok := s.jobs[id]
	if !ok {
		s.mu.Unlock()
		return nil, greenq.ErrNotFound
	}
	if j.State != greenq.StateRunning && !(j.State == greenq.StateCancelled && f.State == greenq.StateCancelled) {
		s.mu.Unlock()
		return nil, greenq.Errorf(greenq.CodeConflict, "job %s is %s", id, j.State)
	}
	j.State = f.State
	j.Segments = append(j.Segments, f.Segment)
	if f.Receipt != nil {
		j.Receipt = f.Receipt
	}
	if j.Run != nil {
		end, code := f.Segment.End, f.ExitCode
		j.Run.FinishedAt, j.Run.ExitCode = &end, &code
	}
	j.Error = f.Error
	cp := *j
	s.mu.Unlock()
	s.finishes <- finishCall{id, f}
	return &cp, nil
}

// pause asks for a running job's pause, as the planner does: an event
// to every subscriber.
func (s *fakeStore) pause(id string) {
	s.mu.Lock()
	subs := s.pauses
	s.mu.Unlock()
	for _, c := range subs {
		c <- id
	}
}

func (s *fakeStore) CancelEvents(ctx context.Context) <-chan string {
	return s.subscribe(ctx, &s.subs)
}

func (s *fakeStore) PauseEvents(ctx context.Context) <-chan string {
	return s.subscribe(ctx, &s.pauses)
}

func (s *fakeStore) subscribe(ctx context.Context, subs *[]chan string) <-chan string {
	in := make(chan string, 16)
	s.mu.Lock()
	*subs = append(*subs, in)
	s.mu.Unlock()
	out := make(chan string)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-in:
				select {
				case out <- id:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (s *fakeStore) Heartbeat(_ context.Context, w queue.WorkerInfo, _ time.Duration) error {
	select {
	case s.beats <- w:
	default:
	}
	return nil
}

func (s *fakeStore) Series(_ context.Context, region string) (forecast.Series, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.series[region], nil
}

func (s *fakeStore) Get(_ context.Context, _ string, id string) (*greenq.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, greenq.ErrNotFound
	}
	cp := *j
	return &cp, nil
}

func (s *fakeStore) MintJobToken(_ context.Context, id string, _ time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = map[string]string{}
	}
	tok := queue.JobTokenPrefix + id
	s.tokens[id] = tok
	return tok, nil
}

func (s *fakeStore) TakeEnergy(_ context.Context, id string) (*greenq.EnergyReading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.posted[id]
	delete(s.posted, id)
	delete(s.tokens, id)
	return r, nil
}

// post stores a reading for job id as the API would, with its token.
func (s *fakeStore) post(id, tok string, r greenq.EnergyReading) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens[id] != tok || s.posted[id] != nil {
		return false
	}
	if s.posted == nil {
		s.posted = map[string]*greenq.EnergyReading{}
	}
	s.posted[id] = &r
	return true
}
