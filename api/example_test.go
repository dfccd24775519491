package api

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func httptestBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// A server with one tenant's token: requests without it are refused, with
// it they act for that tenant.
func ExampleNew() {
	store := newFakeStore(&testing.T{}, testNow)
	srv, err := New(Config{Tokens: []Token{{Tenant: "alice", SHA256: HashToken("s3cret")}}, Now: func() time.Time { return testNow }}, store)
	if err != nil {
		panic(err)
	}
	req := httptest.NewRequest("POST", "/v1/jobs", strings.NewReader(`{"command":["python","train.py"],"deadline":"24h"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	fmt.Println(rec.Code, srv.Open())

	req.Header.Set("Authorization", "Bearer s3cret")
	req.Body = httptestBody(`{"command":["python","train.py"],"deadline":"24h"}`)
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output:
	// 401 false
	// 201 /v1/jobs/j-0001
}
