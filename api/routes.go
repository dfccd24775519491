package api

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/greenq/greenq"
)

//go:embed openapi.yaml
var openAPIYAML []byte

//go:embed web
var webFS embed.FS

// openAPIJSON converts the hand-written document to the JSON served at
// /openapi.json.
func openAPIJSON() ([]byte, error) {
	b, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("convert openapi.yaml: %w", err)
	}
	return b, nil
}

// OpenAPI returns the OpenAPI 3 document served at /openapi.json.
func (s *Server) OpenAPI() []byte { return s.openapi }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/jobs", s.v1(s.submit))
	m.HandleFunc("POST /v1/jobs:batch", s.v1(s.submitBatch))
	m.HandleFunc("GET /v1/jobs", s.v1(s.list))
	m.HandleFunc("GET /v1/jobs/{id}", s.v1(s.get))
	m.HandleFunc("POST /v1/jobs/{id}/cancel", s.v1(s.cancel))
	m.HandleFunc("GET /v1/jobs/{id}/logs", s.v1(s.logs))
	m.HandleFunc("POST /v1/jobs/{id}/energy", s.postEnergy)
	m.HandleFunc("GET /v1/plan", s.v1(s.plan))
	m.HandleFunc("GET /v1/summary", s.v1(s.summary))
	m.HandleFunc("GET /v1/forecasts/{region}", s.v1(s.forecast))
	m.HandleFunc("GET /v1/regions", s.v1(s.regions))
	m.HandleFunc("GET /v1/report", s.v1(s.report("json")))
	m.HandleFunc("GET /report", s.v1(s.report("html")))
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.metricsHandler())
	m.HandleFunc("GET /openapi.json", s.local(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.openapi)
	}))
	web, _ := fs.Sub(webFS, "web")
	m.HandleFunc("GET /{$}", s.local(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, web, "index.html")
	}))
	m.Handle("GET /assets/", s.local(http.StripPrefix("/assets/", http.FileServerFS(web)).ServeHTTP))
	m.HandleFunc("/", s.notFound)
	s.mux = m
}

// notFound answers unknown paths (404), and known paths with the wrong
// method (405 with Allow), in the API's error shape.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(w, r, greenq.Errorf(greenq.CodeMethodNotAllowed, "%s is not served on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	s.writeError(w, r, greenq.Errorf(greenq.CodeNotFound, "no such endpoint: %s %s (see /openapi.json)", r.Method, r.URL.Path))
}
