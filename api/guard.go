package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/greenq/greenq"
)

// Browsers send some cross-origin requests without asking the server first
// (a "simple" POST with a text/plain or form body, a no-cors fetch, a form
// submission). The guard refuses everything a page of another origin could
// make a browser send, before any handler runs:
//
//   - a request whose Origin is neither the server's own nor one listed in
//     Config.AllowedOrigins is 403 (field Origin);
//   - a request a browser marks Sec-Fetch-Site: cross-site or same-site (a
//     page on another port of the same host) is 403 (field Sec-Fetch-Site)
//     unless its Origin is listed; a top-level navigation (GET or HEAD of a
//     document) is let through, since the navigating page cannot read it;
//   - a body that is not application/json is 415 (field Content-Type): no
//     browser sends that cross-origin without a preflight;
//   - without tokens, a Host that is not a loopback name is 403 (field Host),
//     so a DNS-rebound name cannot reach a loopback server as same-origin;
//   - a token in the query string (token, access_token, api_key) is 400:
//     URLs end up in logs, histories and Referer headers;
//   - an OPTIONS preflight is answered for listed origins only, and no
//     response carries Access-Control-Allow-Origin for any other.

// queryTokenParams are query parameters that would carry a credential.
var queryTokenParams = []string{"token", "access_token", "api_key", "apikey", "auth"}

// guard returns the refusal for r, or nil to serve it.
func (s *Server) guard(r *http.Request) error {
	// Remote clients of a server without tokens are refused by
	// authenticate; a loopback client must also have used a loopback name.
	if s.Open() && loopback(r.RemoteAddr) && !loopbackHost(r.Host) {
		return forbidden("Host", "%q is not a loopback name; a greenq server without API tokens answers only http://127.0.0.1, localhost or [::1] (configure tokens to serve other names)", r.Host)
	}
	origin := strings.ToLower(r.Header.Get("Origin"))
	listed := origin != "" && s.allowedOrigin(origin)
	if origin != "" && !listed && origin != ownOrigin(r) {
		return forbidden("Origin", "%q may not call this API; list it in api.allowed_origins to allow it", origin)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); (site == "cross-site" || site == "same-site") && !listed && !navigation(r) {
		return forbidden("Sec-Fetch-Site", "a %s request from a page of another origin is refused; list its origin in api.allowed_origins to allow it", site)
	}
	for name := range r.URL.Query() {
		if slices.Contains(queryTokenParams, strings.ToLower(name)) {
			return greenq.Invalid(name, "credentials are not accepted in URLs; send Authorization: Bearer <token>")
		}
	}
	return checkContentType(r)
}

// checkContentType requires application/json on a request that carries a
// body (or says it does).
func checkContentType(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return nil // e.g. POST /v1/jobs/{id}/cancel with no body
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return &greenq.Error{Code: greenq.CodeUnsupportedMediaType, Field: "Content-Type",
			Message: fmt.Sprintf("must be application/json, got %s", ct)}
	}
	return nil
}

// navigation reports whether r is a top-level GET or HEAD navigation (a
// link followed, a URL typed): the page that started it cannot read the
// answer.
func navigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document"
}

// preflight answers an OPTIONS request: for a listed origin with the CORS
// headers it asks for; for any other, 403 without them.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !s.allowedOrigin(origin) {
		s.writeError(w, r, forbidden("Origin", "%q may not call this API; list it in api.allowed_origins to allow it", origin))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// allowedOrigin reports whether origin is listed in Config.AllowedOrigins.
func (s *Server) allowedOrigin(origin string) bool {
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// corsHeaders marks an answer to a listed origin as readable by it.
func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" && s.allowedOrigin(origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Location, Retry-After, "+HeaderLogOffset+", "+HeaderLogCut+", "+HeaderLogSkipped+", "+HeaderJobState+", "+HeaderJobFinal)
	}
}

// ownOrigin is the origin a page served by this server has.
func ownOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.ToLower(r.Host)
}

// loopbackHost reports whether a Host header names this machine's loopback
// interface: localhost or a loopback address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateOrigins checks Config.AllowedOrigins: each a scheme://host[:port]
// with no path.
func validateOrigins(origins []string) error {
	for i, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || strings.HasSuffix(o, "/") {
			return greenq.Invalid(fmt.Sprintf("api.allowed_origins[%d]", i),
				"%q is not an origin: scheme://host[:port] with no path, e.g. https://notebooks.example.org", o)
		}
	}
	return nil
}

func forbidden(field, format string, args ...any) *greenq.Error {
	return &greenq.Error{Code: greenq.CodeForbidden, Field: field, Message: fmt.Sprintf(format, args...)}
}
