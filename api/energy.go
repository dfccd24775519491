package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
)

// POST /v1/jobs/{id}/energy takes the energy reading of a running job,
// posted by `greenq meter` where a cluster runs the job (a Slurm node, a
// pod) with the job's token (GREENQ_JOB_TOKEN, minted by the worker for
// that run, queue.MintJobToken). The token is good for that one request:
// its job's reading, once, while the job runs; any other request with it
// is refused (403).

// EnergyStore takes readings posted with a job token (*queue.Store
// implements it). A server whose store does not answers 404.
type EnergyStore interface {
	// PostEnergy stores r for job id, posted with job token tok; its
	// errors are *greenq.Error (queue.Store.PostEnergy).
	PostEnergy(ctx context.Context, id, tok string, r greenq.EnergyReading) error
}

// maxReadingBytes bounds a posted reading's body.
const maxReadingBytes = 64 << 10

// postEnergy serves POST /v1/jobs/{id}/energy.
func (s *Server) postEnergy(w http.ResponseWriter, r *http.Request) {
	if err := s.takeEnergy(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) takeEnergy(w http.ResponseWriter, r *http.Request) error {
	es, ok := s.store.(EnergyStore)
	if !ok {
		return greenq.Errorf(greenq.CodeNotFound, "this server takes no energy readings")
	}
	tok, err := bearer(r)
	if err != nil {
		return err
	}
	if !queue.IsJobToken(tok) {
		return greenq.Errorf(greenq.CodeUnauthenticated, "a reading is posted with the job's token (GREENQ_JOB_TOKEN), not an API token")
	}
	id := r.PathValue("id")
	if ok, wait := s.allow("job-token:" + id); !ok {
		secs := max(int(math.Ceil(wait.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return greenq.Errorf(greenq.CodeRateLimited, "too many requests: retry after %d s", secs)
	}
	var rd greenq.EnergyReading
	if err := decodeJSON(w, r, maxReadingBytes, &rd); err != nil {
		return err
	}
	return es.PostEnergy(r.Context(), id, tok, rd)
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if len(r.Header.Values("Authorization")) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", greenq.Errorf(greenq.CodeUnauthenticated, "send one Authorization: Bearer <job token> header")
	}
	return tok, nil
}

// refuseJobToken refuses a request that carries a job token anywhere but
// POST /v1/jobs/{id}/energy (authenticate's first check).
func refuseJobToken(r *http.Request) error {
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if queue.IsJobToken(strings.TrimSpace(tok)) {
		return greenq.Errorf(greenq.CodeForbidden, "a job token may only post its job's energy reading (POST /v1/jobs/{id}/energy)")
	}
	return nil
}
