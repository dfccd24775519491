package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// logSink batches a job's output into AppendLog calls: at most every
// flushEvery, or sooner once flushAt bytes wait. It holds at most max
// bytes; older output is dropped (the store keeps only a tail anyway) and
// the drop is noted in the log.
type logSink struct {
	store      Store
	id         string
	max        int
	flushAt    int
	flushEvery time.Duration
	logger     *slog.Logger

	mu      sync.Mutex
	buf     []byte
	dropped int
	kick    chan struct{}
}

func newLogSink(store Store, id string, max int, logger *slog.Logger) *logSink {
	return &logSink{store: store, id: id, max: max, flushAt: min(32<<10, max),
		flushEvery: time.Second, logger: logger, kick: make(chan struct{}, 1)}
}

// Write implements io.Writer; it never blocks on the store.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	if over := len(s.buf) - s.max; over > 0 {
		s.dropped += over
		s.buf = append(s.buf[:0], s.buf[over:]...)
	}
	full := len(s.buf) >= s.flushAt
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// run flushes until done is closed, then flushes what is left.
func (s *logSink) run(done <-chan struct{}) {
	t := time.NewTicker(s.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			s.flush()
			return
		case <-t.C:
			s.flush()
		case <-s.kick:
			s.flush()
		}
	}
}

func (s *logSink) flush() {
	s.mu.Lock()
	if len(s.buf) == 0 && s.dropped == 0 {
		s.mu.Unlock()
		return
	}
	out := s.buf
	if s.dropped > 0 {
		out = append(fmt.Appendf(nil, "[greenq: %d bytes of output dropped]\n", s.dropped), out...)
	}
	s.buf, s.dropped = nil, 0
	s.mu.Unlock()
	// The job's own context may be cancelled already; the output still
	// belongs in the log.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.AppendLog(ctx, s.id, out); err != nil {
		s.logger.Warn("append job log", "job", s.id, "err", err)
	}
}
