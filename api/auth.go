package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/greenq/greenq"
)

// principal is who a request acts for.
type principal struct {
	tenant string // owner of submitted jobs
	admin  bool   // sees every tenant
	key    string // rate-limit bucket
}

// scope is the tenant argument of store reads: "" for an admin.
func (p principal) scope() string {
	if p.admin {
		return ""
	}
	return p.tenant
}

// authenticate finds the request's principal. With tokens configured it
// requires a bearer token; without, it admits loopback clients only.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	if err := refuseJobToken(r); err != nil {
		return principal{}, err
	}
	if s.Open() {
		if !loopback(r.RemoteAddr) {
			return principal{}, greenq.Errorf(greenq.CodeUnauthenticated,
				"this greenq server has no API tokens configured and serves only loopback clients; configure tokens to allow remote access")
		}
		return principal{tenant: LocalTenant, admin: true, key: LocalTenant}, nil
	}
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if h == "" {
		return principal{}, greenq.Errorf(greenq.CodeUnauthenticated, "missing bearer token: send Authorization: Bearer <token> (GREENQ_TOKEN)")
	}
	if len(r.Header.Values("Authorization")) > 1 {
		// Proxies and servers disagree on which of several counts.
		return principal{}, greenq.Errorf(greenq.CodeUnauthenticated, "send one Authorization header, not several")
	}
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, greenq.Errorf(greenq.CodeUnauthenticated, "the Authorization header must be Bearer <token>")
	}
	sum := sha256.Sum256([]byte(tok))
	// Compare against every token, without an early exit, so timing says
	// nothing about which (if any) matched.
	found := -1
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return principal{}, greenq.Errorf(greenq.CodeUnauthenticated, "the bearer token is not valid")
	}
	t := s.tokens[found]
	return principal{tenant: t.tenant, admin: t.admin, key: t.id}, nil
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiHandler is a /v1 handler: it acts for p and returns errors for
// writeError.
type apiHandler func(w http.ResponseWriter, r *http.Request, p principal) error

// v1 wraps h with authentication and the per-token rate limit.
func (s *Server) v1(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if ok, wait := s.allow(p.key); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			s.writeError(w, r, greenq.Errorf(greenq.CodeRateLimited, "too many requests: retry after %d s", secs))
			return
		}
		if err := h(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// local admits loopback clients in open mode and everyone otherwise: for
// pages that carry no tenant data but should not leak from a dev server.
func (s *Server) local(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Open() && !loopback(r.RemoteAddr) {
			_, err := s.authenticate(r)
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}
