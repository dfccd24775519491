package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/greenq/greenq"
)

// Headers of GET /v1/jobs/{id}/logs, for clients that follow a log: ask
// again with ?offset= the HeaderLogOffset of the last answer until
// HeaderJobFinal is "true".
const (
	// HeaderLogOffset is how many bytes of output the job has written: the
	// offset to ask from next.
	HeaderLogOffset = "X-Greenq-Log-Offset"
	// HeaderLogCut is how many bytes the kept log has cut in all.
	HeaderLogCut = "X-Greenq-Log-Cut"
	// HeaderLogSkipped is how many bytes after the offset asked for were
	// cut before they could be read: the N of the answer's "… N bytes cut
	// …" line. When the answer starts with that line, a follower whose
	// output does not end a line prints a newline before it.
	HeaderLogSkipped = "X-Greenq-Log-Skipped"
	// HeaderJobState is the job's state, read before its log.
	HeaderJobState = "X-Greenq-Job-State"
	// HeaderJobFinal is "true" once the job has ended: the log is complete.
	HeaderJobFinal = "X-Greenq-Job-Final"
)

// logParams are the query parameters GET /v1/jobs/{id}/logs accepts.
var logParams = []string{"offset"}

// logs serves a job's kept output as text: all of it, or with ?offset=N
// what follows the first N bytes (a "… N bytes cut …" line stands for
// output cut before the reader saw it).
func (s *Server) logs(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := onlyParams(q, logParams...); err != nil {
		return err
	}
	var offset int64
	if q.Has("offset") {
		v := q.Get("offset")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return greenq.Invalid("offset", "must be a byte count ≥ 0 (the %s of the previous answer), got %q", HeaderLogOffset, v)
		}
		offset = n
	}
	l, err := s.store.LogsFrom(r.Context(), p.scope(), id, offset)
	if err != nil {
		return fmt.Errorf("read logs of job %s: %w", id, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderLogOffset, strconv.FormatInt(l.Offset, 10))
	h.Set(HeaderLogCut, strconv.FormatInt(l.Cut, 10))
	h.Set(HeaderLogSkipped, strconv.FormatInt(l.Skipped, 10))
	h.Set(HeaderJobState, string(l.State))
	h.Set(HeaderJobFinal, strconv.FormatBool(l.State.Final()))
	_, _ = w.Write(l.Data)
	return nil
}
