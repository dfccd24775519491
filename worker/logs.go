package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logStore is what a logSink needs of the store.
type logStore interface {
	AppendLog(ctx context.Context, id string, p []byte) error
	AppendLogCut(ctx context.Context, id string, p []byte, lost int64, q []byte) error
}

// logSink batches a job's output into AppendLog calls: at most every
// flushEvery, or sooner once flushAt bytes wait. It holds at most max
// bytes: when the store falls behind by more, it keeps the first and the
// latest halves of what waits and drops the middle, which the store counts
// in the log's cut marker (so does output a failed append lost). Nothing
// is dropped unseen.
type logSink struct {
	store      logStore
	id         string
	max        int
	flushAt    int
	flushEvery time.Duration
	logger     *slog.Logger

	mu      sync.Mutex
	buf     []byte // output waiting, from its first byte
	dropped int64  // bytes after buf that are gone
	tail    []byte // output after the dropped bytes (empty when none are)
	kick    chan struct{}
}

func newLogSink(store logStore, id string, max int, logger *slog.Logger) *logSink {
	return &logSink{store: store, id: id, max: max, flushAt: min(32<<10, max),
		flushEvery: time.Second, logger: logger, kick: make(chan struct{}, 1)}
}

// Write implements io.Writer; it never blocks on the store.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	half := s.max / 2
	if s.dropped == 0 {
		s.buf = append(s.buf, p...)
		if len(s.buf) > s.max {
			rest := s.buf[half:]
			keep := s.max - half
			s.dropped = int64(len(rest) - keep)
			s.tail = append(s.tail[:0], rest[len(rest)-keep:]...)
			s.buf = s.buf[:half]
		}
	} else {
		s.tail = append(s.tail, p...)
		if over := len(s.tail) - (s.max - half); over > 0 {
			s.dropped += int64(over)
			s.tail = append(s.tail[:0], s.tail[over:]...)
		}
	}
	full := len(s.buf)+len(s.tail) >= s.flushAt
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
	buf, dropped, tail := s.buf, s.dropped, s.tail
	s.buf, s.dropped, s.tail = nil, 0, nil
	s.mu.Unlock()
	if len(buf) == 0 && dropped == 0 {
		return
	}
	// The job's own context may be cancelled already; the output still
	// belongs in the log.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if dropped == 0 {
		err = s.store.AppendLog(ctx, s.id, buf)
	} else {
		err = s.store.AppendLogCut(ctx, s.id, buf, dropped, tail)
	}
	if err == nil {
		return
	}
	lost := int64(len(buf)) + dropped + int64(len(tail))
	s.logger.Warn("append job log; the output is counted as cut", "job", s.id, "bytes", lost, "err", err)
	// What waits now came after the lost output: the next append records
	// the loss before it.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped == 0 {
		s.dropped, s.tail, s.buf = lost, s.buf, nil
	} else {
		s.dropped += lost + int64(len(s.buf))
		s.buf = nil
	}
}
