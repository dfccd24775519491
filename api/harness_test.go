package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

// Tokens of the test tenants.
const (
	aliceToken = "alice-secret-token"
	bobToken   = "bob-secret-token"
	adminToken = "admin-secret-token"
)

func testTokens() []Token {
	return []Token{
		{Tenant: "alice", SHA256: HashToken(aliceToken)},
		{Tenant: "bob", SHA256: HashToken(bobToken)},
		{Tenant: "ops", SHA256: HashToken(adminToken), Admin: true},
	}
}

type bundle struct {
	srv   *Server
	store *fakeStore
}

// setup returns a server with the test tokens over a fresh fake store, on
// the fake clock, with generous rate limits unless cfg says otherwise.
func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	store := newFakeStore(t, testNow)
	if cfg.Tokens == nil {
		cfg.Tokens = testTokens()
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond = -1
	}
	cfg.Now = func() time.Time { return testNow }
	cfg.Logger = testLogger(t)
	srv, err := New(cfg, store)
	require.NoError(t, err)
	return &bundle{srv: srv, store: store}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// errBody decodes the API's error shape.
func (r response) err(t *testing.T) (code, field, msg string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Field, Message string }
	}
	r.json(t, &b)
	return b.Error.Code, b.Error.Field, b.Error.Message
}

// do serves one request from a loopback client and checks the response
// (and, for successful calls, the request) against the OpenAPI document.
func (b *bundle) do(t *testing.T, method, path, token string, body io.Reader) response {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Host = "127.0.0.1:8080"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return b.serve(t, req)
}

func (b *bundle) serve(t *testing.T, req *http.Request) response {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	rec := httptest.NewRecorder()
	b.srv.Handler().ServeHTTP(rec, req)
	res := response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	validateAgainstSpec(t, b.srv, req, res)
	return res
}

var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

func specRouter(t *testing.T, srv *Server) routers.Router {
	t.Helper()
	spec.once.Do(func() {
		// Report formats are text the validator need not parse.
		for _, ct := range []string{"text/markdown", "text/html"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(srv.OpenAPI())
		if err != nil {
			spec.err = err
			return
		}
		if spec.err = doc.Validate(context.Background()); spec.err != nil {
			return
		}
		doc.Servers = nil // match any host
		spec.router, spec.err = gorillamux.NewRouter(doc)
	})
	require.NoError(t, spec.err, "openapi document")
	return spec.router
}

// validateAgainstSpec fails the test when a response of a documented route
// does not match the document, or when a request that succeeded does not.
func validateAgainstSpec(t *testing.T, srv *Server, req *http.Request, res response) {
	t.Helper()
	router := specRouter(t, srv)
	if strings.HasPrefix(req.URL.Path, "/assets/") || req.URL.Path == "/" {
		return
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// Unknown paths and methods are 404 and 405; the guard refuses
		// before routing (403, 415, 400).
		require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusForbidden,
			http.StatusUnsupportedMediaType, http.StatusBadRequest}, res.Status,
			"undocumented route %s %s answered %d", req.Method, req.URL.Path, res.Status)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if res.Status < 300 {
		require.NoError(t, openapi3filter.ValidateRequest(req.Context(), in), "request %s %s does not match openapi.yaml", req.Method, req.URL)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.Status, Header: res.Header, Options: opts}
	out.SetBodyBytes(res.Body)
	require.NoError(t, openapi3filter.ValidateResponse(req.Context(), out), "response %d to %s %s does not match openapi.yaml: %s", res.Status, req.Method, req.URL, res.Body)
}

// testLogger sends the server's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
