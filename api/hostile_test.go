package api

import (
	"encoding/base64"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// hostileOrigin is the one origin the hostile suite's servers list in
// Config.AllowedOrigins.
const hostileOrigin = "https://notebooks.example.org"

// aliceJob is the job every hostile case starts with: alice's, pending,
// with output only she may read.
const aliceJob = "j-7f3a"

const aliceLogs = "alice's private output\n"

// noToken sends no Authorization header.
const noToken = "-"

// hostileCase is one request the API must refuse (or, for the few
// controls, accept) without storing or changing anything.
type hostileCase struct {
	name   string
	method string
	path   string
	body   string
	// token is the bearer token; empty means alice's, noToken none.
	token string
	// mod adjusts the request after the defaults (loopback client, Host
	// 127.0.0.1:8080, Content-Type application/json with a body).
	mod func(r *http.Request)
	// open serves without tokens (loopback clients only).
	open   bool
	status int
	// code and field are the error's; code empty means not an error.
	code  greenq.ErrorCode
	field string
	// allow is the Allow header a 405 must carry.
	allow string
	// stores marks a control that is accepted and stores one job.
	stores bool
	// raw skips the openapi.yaml check, for answers the document does not
	// describe (the mux's redirect of a path with dot segments).
	raw bool
	// check asserts more about the answer.
	check func(t *testing.T, b *bundle, res response)
}

// setHeader returns a mod that sets header name to values.
func setHeader(name string, values ...string) func(*http.Request) {
	return func(r *http.Request) { r.Header[http.CanonicalHeaderKey(name)] = values }
}

func remoteClient(r *http.Request) { r.RemoteAddr = "203.0.113.7:51000" }

// chunked drops the declared length, as a Transfer-Encoding: chunked body
// arrives.
func chunked(r *http.Request) { r.ContentLength = -1 }

// nested returns n nested arrays around a string.
func nested(n int) string { return strings.Repeat("[", n) + `"x"` + strings.Repeat("]", n) }

// noAliceData checks that an answer to another tenant shows nothing of
// alice's job, and reads as for a job that does not exist.
func noAliceData(method, suffix string) func(t *testing.T, b *bundle, res response) {
	return func(t *testing.T, b *bundle, res response) {
		t.Helper()
		require.NotContains(t, string(res.Body), "alice")
		_, _, msg := res.err(t)
		other := b.do(t, method, strings.ReplaceAll(suffix, "ID", "j-nobody"), bobToken, nil)
		require.Equal(t, http.StatusNotFound, other.Status)
		_, _, otherMsg := other.err(t)
		require.Equal(t, strings.ReplaceAll(otherMsg, "j-nobody", aliceJob), msg,
			"another tenant's job must read exactly like a missing one")
	}
}

func hostileCases() []hostileCase {
	const jobPath = "/v1/jobs/" + aliceJob
	okPending := func(t *testing.T, b *bundle, _ response) {
		t.Helper()
		jobs, _ := snapshot(b.store)
		require.Equal(t, greenq.StatePending, jobs[aliceJob].State)
	}
	wrongMethod := func(method, path, allow string) hostileCase {
		return hostileCase{name: method + " " + path, method: method, path: path,
			status: 405, code: greenq.CodeMethodNotAllowed, allow: allow}
	}
	ct := func(name, contentType string) hostileCase {
		return hostileCase{name: "content type " + name, method: "POST", path: "/v1/jobs", body: okJob,
			mod: setHeader("Content-Type", contentType), status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type"}
	}
	origin := func(name, o string) hostileCase {
		return hostileCase{name: "origin " + name, method: "GET", path: "/v1/jobs", mod: setHeader("Origin", o),
			status: 403, code: greenq.CodeForbidden, field: "Origin"}
	}
	host := func(name, h string) hostileCase {
		return hostileCase{name: "open mode host " + name, open: true, method: "GET", path: "/v1/jobs",
			mod: func(r *http.Request) { r.Host = h }, status: 403, code: greenq.CodeForbidden, field: "Host"}
	}
	huge := `{"command":["python","train.py"],"deadline":"24h","name":"` + strings.Repeat("a", 2<<20) + `"}`
	job := func(extra string) string { return `{"command":["python","train.py"],"deadline":"24h",` + extra + `}` }

	return []hostileCase{
		// Wrong methods on every route: 405 with Allow, before auth, and
		// nothing changed (DELETE does not cancel).
		wrongMethod("PUT", "/v1/jobs", "GET, POST"),
		wrongMethod("DELETE", "/v1/jobs", "GET, POST"),
		wrongMethod("TRACE", "/v1/jobs", "GET, POST"),
		wrongMethod("DELETE", jobPath, "GET"),
		wrongMethod("PUT", jobPath, "GET"),
		{name: "PATCH job with a JSON body", method: "PATCH", path: jobPath, body: `{"state":"cancelled"}`,
			status: 405, code: greenq.CodeMethodNotAllowed, allow: "GET", check: okPending},
		{name: "GET cancel", method: "GET", path: jobPath + "/cancel",
			status: 405, code: greenq.CodeMethodNotAllowed, allow: "POST", check: okPending},
		wrongMethod("DELETE", jobPath+"/cancel", "POST"),
		wrongMethod("POST", jobPath+"/logs", "GET"),
		wrongMethod("DELETE", "/v1/plan", "GET"),
		wrongMethod("POST", "/v1/summary", "GET"),
		wrongMethod("PUT", "/v1/forecasts/uk", "GET"),
		wrongMethod("PATCH", "/v1/regions", "GET"),
		wrongMethod("POST", "/v1/report", "GET"),
		wrongMethod("DELETE", "/report", "GET"),
		wrongMethod("POST", "/healthz", "GET"),
		wrongMethod("PUT", "/readyz", "GET"),
		wrongMethod("POST", "/metrics", "GET"),
		wrongMethod("DELETE", "/openapi.json", "GET"),
		{name: "unknown path", method: "GET", path: "/v1/job", status: 404, code: greenq.CodeNotFound},
		{name: "unknown version", method: "GET", path: "/v2/jobs", status: 404, code: greenq.CodeNotFound},
		{name: "unknown job action", method: "POST", path: jobPath + "/delete", status: 404, code: greenq.CodeNotFound, check: okPending},

		// Content types: no body a browser may send cross-origin without a
		// preflight is read.
		ct("text/plain", "text/plain"),
		ct("form", "application/x-www-form-urlencoded"),
		ct("multipart", "multipart/form-data; boundary=greenq"),
		ct("json-seq", "application/json-seq"),
		ct("jsonx", "application/jsonx"),
		ct("problem+json", "application/problem+json"),
		ct("bogus parameter", "application/json; charset"),
		ct("two types in one", "application/json, text/plain"),
		{name: "content type missing with a body", method: "POST", path: "/v1/jobs", body: okJob,
			mod: func(r *http.Request) { r.Header.Del("Content-Type") }, status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type"},
		{name: "content type missing with a chunked body", method: "POST", path: "/v1/jobs", body: okJob,
			mod: func(r *http.Request) { r.Header.Del("Content-Type"); chunked(r) }, status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type"},
		{name: "two content types, text first", method: "POST", path: "/v1/jobs", body: okJob,
			mod: setHeader("Content-Type", "text/plain", "application/json"), status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type"},
		{name: "cancel as a simple text/plain request", method: "POST", path: jobPath + "/cancel", body: `{}`,
			mod: setHeader("Content-Type", "text/plain;charset=UTF-8"), status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type", check: okPending},
		{name: "cancel as a form post", method: "POST", path: jobPath + "/cancel", body: `x=1`,
			mod: setHeader("Content-Type", "application/x-www-form-urlencoded"), status: 415, code: greenq.CodeUnsupportedMediaType, field: "Content-Type", check: okPending},
		{name: "control: json with charset", method: "POST", path: "/v1/jobs", body: okJob,
			mod: setHeader("Content-Type", "Application/JSON; charset=utf-8"), status: 201, stores: true},

		// Sizes.
		{name: "huge declared body", method: "POST", path: "/v1/jobs", body: huge, status: 413, code: greenq.CodeTooLarge, field: "body"},
		{name: "huge chunked body", method: "POST", path: "/v1/jobs", body: huge, mod: chunked, status: 413, code: greenq.CodeTooLarge, field: "body"},
		{name: "declared length over the limit", method: "POST", path: "/v1/jobs", body: okJob,
			mod: func(r *http.Request) { r.ContentLength = 1 << 40 }, status: 413, code: greenq.CodeTooLarge, field: "body"},

		// Deep nesting is refused by the decoder's depth limit, not a crash.
		{name: "10 000 nested arrays", method: "POST", path: "/v1/jobs", body: job(`"command":` + nested(10000)), status: 400, code: greenq.CodeInvalidArgument, field: "body"},
		{name: "100 000 nested objects", method: "POST", path: "/v1/jobs",
			body: `{"tags":` + strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat(`}`, 100000) + `}`, status: 400, code: greenq.CodeInvalidArgument, field: "body"},
		{name: "nested arrays under the depth limit", method: "POST", path: "/v1/jobs",
			body: `{"deadline":"24h","command":` + nested(5000) + `}`, status: 400, code: greenq.CodeInvalidArgument, field: "command[0]"},
		{name: "wrong type in a batch names the job", method: "POST", path: "/v1/jobs",
			body: `{"jobs":[{"command":["a"],"deadline":"1h"},{"command":["b"],"deadline":"1h","gpus":"2"}]}`, status: 400, code: greenq.CodeInvalidArgument, field: "jobs[1].gpus"},

		// Fields a client may not set (mass assignment) and parser
		// differentials.
		{name: "unknown field tenant", method: "POST", path: "/v1/jobs", body: job(`"tenant":"bob"`), status: 400, code: greenq.CodeInvalidArgument, field: "tenant"},
		{name: "unknown field state", method: "POST", path: "/v1/jobs", body: job(`"state":"succeeded"`), status: 400, code: greenq.CodeInvalidArgument, field: "state"},
		{name: "unknown field id", method: "POST", path: "/v1/jobs", body: job(`"id":"` + aliceJob + `"`), status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "unknown field receipt", method: "POST", path: "/v1/jobs", body: job(`"receipt":{"saved_gco2":1e9}`), status: 400, code: greenq.CodeInvalidArgument, field: "receipt"},
		{name: "duplicate key", method: "POST", path: "/v1/jobs",
			body: `{"command":["rm","-rf","/"],"command":["python","train.py"],"deadline":"24h"}`, status: 400, code: greenq.CodeInvalidArgument, field: "command"},
		{name: "duplicate key differing in case", method: "POST", path: "/v1/jobs",
			body: `{"command":["python","train.py"],"Command":["rm","-rf","/"],"deadline":"24h"}`, status: 400, code: greenq.CodeInvalidArgument, field: "Command"},
		{name: "duplicate tag", method: "POST", path: "/v1/jobs", body: job(`"tags":{"team":"a","team":"b"}`), status: 400, code: greenq.CodeInvalidArgument, field: "tags"},
		{name: "duplicate key in a batch", method: "POST", path: "/v1/jobs",
			body: `{"jobs":[{"command":["a"],"deadline":"1h"},{"command":["b"],"deadline":"1h","deadline":"48h"}]}`, status: 400, code: greenq.CodeInvalidArgument, field: "jobs[1].deadline"},
		{name: "key in another case in a batch", method: "POST", path: "/v1/jobs",
			body: `{"jobs":[{"command":["a"],"Deadline":"1h"}]}`, status: 400, code: greenq.CodeInvalidArgument, field: "jobs[0].Deadline"},
		{name: "duplicate jobs array", method: "POST", path: "/v1/jobs",
			body: `{"jobs":[{"command":["a"],"deadline":"1h"}],"jobs":[{"command":["b"],"deadline":"1h"}]}`, status: 400, code: greenq.CodeInvalidArgument, field: "jobs"},
		{name: "key in upper case", method: "POST", path: "/v1/jobs",
			body: `{"COMMAND":["python","train.py"],"deadline":"24h"}`, status: 400, code: greenq.CodeInvalidArgument, field: "COMMAND"},

		// Bad UTF-8 outside the fields TestBadSubmissions covers.
		{name: "bad UTF-8 in a key", method: "POST", path: "/v1/jobs", body: job(`"na` + "\xff" + `me":"x"`), status: 400, code: greenq.CodeInvalidArgument, field: "body"},
		{name: "bad UTF-8 in a tag value", method: "POST", path: "/v1/jobs", body: job(`"tags":{"team":"` + "\xfe" + `"}`), status: 400, code: greenq.CodeInvalidArgument, field: "tags"},
		{name: "overlong UTF-8 slash in name", method: "POST", path: "/v1/jobs", body: job(`"name":"a` + "\xc0\xaf" + `b"`), status: 400, code: greenq.CodeInvalidArgument, field: "name"},
		{name: "bad UTF-8 in a batch", method: "POST", path: "/v1/jobs", body: `{"jobs":[` + job(`"name":"`+"\xed\xa0\x80"+`"`) + `]}`, status: 400, code: greenq.CodeInvalidArgument, field: "jobs"},
		{name: "byte order mark", method: "POST", path: "/v1/jobs", body: "\xef\xbb\xbf" + okJob, status: 400, code: greenq.CodeInvalidArgument, field: "body"},

		// Authorization header tricks.
		{name: "two Authorization headers", method: "GET", path: jobPath, token: noToken,
			mod: setHeader("Authorization", "Bearer "+bobToken, "Bearer "+aliceToken), status: 401, code: greenq.CodeUnauthenticated},
		{name: "Basic credentials", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+aliceToken))), status: 401, code: greenq.CodeUnauthenticated},
		{name: "bare token without scheme", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", aliceToken), status: 401, code: greenq.CodeUnauthenticated},
		{name: "Bearer without token", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", "Bearer   "), status: 401, code: greenq.CodeUnauthenticated},
		{name: "token with a NUL", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", "Bearer "+aliceToken+"\x00"), status: 401, code: greenq.CodeUnauthenticated},
		{name: "token with a second word", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", "Bearer "+aliceToken+" "+adminToken), status: 401, code: greenq.CodeUnauthenticated},
		{name: "very long Authorization", method: "GET", path: "/v1/jobs", token: noToken,
			mod: setHeader("Authorization", "Bearer "+strings.Repeat("t", 1<<20)), status: 401, code: greenq.CodeUnauthenticated},
		{name: "control: lower-case bearer", method: "GET", path: jobPath, token: noToken,
			mod: setHeader("Authorization", "bearer "+aliceToken), status: 200},
		{name: "control: token with trailing spaces", method: "GET", path: jobPath, token: noToken,
			mod: setHeader("Authorization", "Bearer "+aliceToken+"   "), status: 200},

		// Origins: only the server's own and listed ones.
		origin("other port", "http://127.0.0.1:9999"),
		origin("other scheme", "https://127.0.0.1:8080"),
		origin("null", "null"),
		origin("own with a trailing slash", "http://127.0.0.1:8080/"),
		origin("own as a prefix", "http://127.0.0.1:8080.evil.example"),
		origin("subdomain of a listed one", "https://evil.notebooks.example.org"),
		origin("listed one on another port", hostileOrigin+":8443"),
		{name: "origin evil on submit", method: "POST", path: "/v1/jobs", body: okJob, mod: setHeader("Origin", "https://evil.example"),
			status: 403, code: greenq.CodeForbidden, field: "Origin"},
		{name: "origin evil on cancel", method: "POST", path: jobPath + "/cancel", mod: setHeader("Origin", "https://evil.example"),
			status: 403, code: greenq.CodeForbidden, field: "Origin", check: okPending},
		{name: "origin evil on metrics", method: "GET", path: "/metrics", token: noToken, mod: setHeader("Origin", "https://evil.example"),
			status: 403, code: greenq.CodeForbidden, field: "Origin"},
		{name: "control: listed origin in another case", method: "GET", path: "/v1/jobs", mod: setHeader("Origin", "HTTPS://Notebooks.Example.ORG"),
			status: 200, check: func(t *testing.T, _ *bundle, res response) {
				require.NotEmpty(t, res.Header.Get("Access-Control-Allow-Origin"))
			}},
		{name: "control: own origin", method: "GET", path: "/v1/jobs", mod: setHeader("Origin", "http://127.0.0.1:8080"), status: 200},

		// Fetch metadata.
		{name: "cross-site fetch", method: "GET", path: "/v1/jobs", mod: setHeader("Sec-Fetch-Site", "cross-site"),
			status: 403, code: greenq.CodeForbidden, field: "Sec-Fetch-Site"},
		{name: "same-site cancel", method: "POST", path: jobPath + "/cancel", mod: setHeader("Sec-Fetch-Site", "same-site"),
			status: 403, code: greenq.CodeForbidden, field: "Sec-Fetch-Site", check: okPending},
		{name: "cross-site form navigation to cancel", method: "POST", path: jobPath + "/cancel", mod: func(r *http.Request) {
			setHeader("Sec-Fetch-Site", "cross-site")(r)
			setHeader("Sec-Fetch-Mode", "navigate")(r)
			setHeader("Sec-Fetch-Dest", "document")(r)
		}, status: 403, code: greenq.CodeForbidden, field: "Sec-Fetch-Site", check: okPending},
		{name: "cross-site navigation into a frame", method: "GET", path: "/v1/jobs", mod: func(r *http.Request) {
			setHeader("Sec-Fetch-Site", "cross-site")(r)
			setHeader("Sec-Fetch-Mode", "navigate")(r)
			setHeader("Sec-Fetch-Dest", "iframe")(r)
		}, status: 403, code: greenq.CodeForbidden, field: "Sec-Fetch-Site"},
		{name: "control: cross-site top-level navigation", method: "GET", path: "/v1/jobs", mod: func(r *http.Request) {
			setHeader("Sec-Fetch-Site", "cross-site")(r)
			setHeader("Sec-Fetch-Mode", "navigate")(r)
			setHeader("Sec-Fetch-Dest", "document")(r)
		}, status: 200},

		// Open mode: loopback names only, and no trusting forwarding headers.
		host("rebound name", "evil.example:8080"),
		host("loopback-looking name", "127.0.0.1.nip.io:8080"),
		host("localhost as a prefix", "localhost.evil.example"),
		host("empty", ""),
		{name: "open mode X-Forwarded-For from a remote client", open: true, method: "GET", path: "/v1/jobs", mod: func(r *http.Request) {
			remoteClient(r)
			setHeader("X-Forwarded-For", "127.0.0.1")(r)
			setHeader("X-Real-Ip", "127.0.0.1")(r)
			setHeader("Forwarded", "for=127.0.0.1")(r)
			r.Host = "localhost:8080"
		}, status: 401, code: greenq.CodeUnauthenticated},
		{name: "open mode remote submit", open: true, method: "POST", path: "/v1/jobs", body: okJob, mod: remoteClient,
			status: 401, code: greenq.CodeUnauthenticated},
		{name: "open mode remote cancel", open: true, method: "POST", path: jobPath + "/cancel", mod: remoteClient,
			status: 401, code: greenq.CodeUnauthenticated, check: okPending},
		{name: "control: open mode localhost", open: true, method: "GET", path: jobPath,
			mod: func(r *http.Request) { r.Host = "localhost:8080" }, status: 200},
		{name: "control: open mode [::1]", open: true, method: "GET", path: jobPath,
			mod: func(r *http.Request) { r.Host = "[::1]:8080"; r.RemoteAddr = "[::1]:40000" }, status: 200},

		// Path traversal and odd ids.
		{name: "encoded traversal id", method: "GET", path: "/v1/jobs/..%2F..%2Fetc%2Fpasswd", status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "NUL id", method: "GET", path: "/v1/jobs/%00", status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "invalid UTF-8 id", method: "GET", path: "/v1/jobs/%ff%fe/logs", status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "very long id", method: "GET", path: "/v1/jobs/" + strings.Repeat("j", 4096), status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "encoded slash in cancel id", method: "POST", path: "/v1/jobs/..%2F" + aliceJob + "/cancel", status: 400, code: greenq.CodeInvalidArgument, field: "id", check: okPending},
		{name: "id with its action encoded", method: "GET", path: "/v1/jobs/" + aliceJob + "%2Flogs", status: 400, code: greenq.CodeInvalidArgument, field: "id"},
		{name: "dot segments are cleaned, not followed", method: "GET", path: "/v1/jobs/x/../../metrics", raw: true, status: 307,
			check: func(t *testing.T, _ *bundle, res response) {
				require.Equal(t, "/v1/metrics", res.Header.Get("Location"), "redirected to the cleaned path, an unknown one")
				require.NotContains(t, string(res.Body), "greenq_")
			}},
		{name: "encoded dot segments to cancel", method: "POST", path: "/v1/jobs/x/%2e%2e/" + aliceJob + "/cancel", status: 404, code: greenq.CodeNotFound, check: okPending},
		{name: "encoded traversal region", method: "GET", path: "/v1/forecasts/..%2F..%2Fetc%2Fpasswd", status: 404, code: greenq.CodeNotFound},

		// Other tenants' jobs read as missing, and stay as they are.
		{name: "bob reads alice's job", method: "GET", path: jobPath, token: bobToken, status: 404, code: greenq.CodeNotFound,
			check: noAliceData("GET", "/v1/jobs/ID")},
		{name: "bob cancels alice's job", method: "POST", path: jobPath + "/cancel", token: bobToken, status: 404, code: greenq.CodeNotFound,
			check: func(t *testing.T, b *bundle, res response) {
				okPending(t, b, res)
				noAliceData("POST", "/v1/jobs/ID/cancel")(t, b, res)
			}},
		{name: "bob reads alice's logs", method: "GET", path: jobPath + "/logs", token: bobToken, status: 404, code: greenq.CodeNotFound,
			check: noAliceData("GET", "/v1/jobs/ID/logs")},
		{name: "bob explains alice's plan", method: "GET", path: "/v1/plan?explain=" + aliceJob, token: bobToken, status: 404, code: greenq.CodeNotFound,
			check: noAliceData("GET", "/v1/plan?explain=ID")},
		{name: "bob lists alice's jobs", method: "GET", path: "/v1/jobs?tenant=alice", token: bobToken, status: 400, code: greenq.CodeInvalidArgument, field: "tenant"},
		{name: "control: the admin reads alice's logs", method: "GET", path: jobPath + "/logs", token: adminToken, status: 200,
			check: func(t *testing.T, _ *bundle, res response) { require.Equal(t, aliceLogs, string(res.Body)) }},

		// Credentials in URLs are refused, whatever else the request has.
		{name: "token in query", method: "GET", path: "/v1/jobs?token=" + aliceToken, token: noToken, status: 400, code: greenq.CodeInvalidArgument, field: "token"},
		{name: "access_token in query", method: "GET", path: "/v1/regions?access_token=" + aliceToken, token: noToken, status: 400, code: greenq.CodeInvalidArgument, field: "access_token"},
		{name: "api_key in query of a submit", method: "POST", path: "/v1/jobs?api_key=" + aliceToken, body: okJob, status: 400, code: greenq.CodeInvalidArgument, field: "api_key"},
		{name: "apikey in query of a cancel", method: "POST", path: jobPath + "/cancel?apikey=" + aliceToken, status: 400, code: greenq.CodeInvalidArgument, field: "apikey", check: okPending},
		{name: "auth in query of the report", method: "GET", path: "/report?auth=" + aliceToken, token: noToken, status: 400, code: greenq.CodeInvalidArgument, field: "auth"},
		{name: "empty token in query beside a header", method: "GET", path: "/v1/summary?token=", status: 400, code: greenq.CodeInvalidArgument, field: "token"},
		{name: "token in query in upper case", method: "GET", path: "/v1/regions?TOKEN=" + aliceToken, status: 400, code: greenq.CodeInvalidArgument, field: "TOKEN"},
	}
}

// TestHostileRequests sends requests an attacker, a confused client or a
// page of another origin might: each is refused with the status, code and
// field the contract names (see guard), no response lets an unlisted origin
// read it, and the store is left exactly as it was.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	cases := hostileCases()
	require.GreaterOrEqual(t, len(cases), 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{AllowedOrigins: []string{hostileOrigin}}
			if tc.open {
				cfg.Tokens = []Token{}
			}
			b := setup(t, cfg)
			seedAlice(b.store)
			before, submits := snapshot(b.store)

			var res response
			if tc.raw {
				res = serveRaw(b, hostileRequest(tc))
			} else {
				res = b.serve(t, hostileRequest(tc))
			}

			require.Equal(t, tc.status, res.Status, "%s", res.Body)
			if tc.code != "" {
				code, field, msg := res.err(t)
				require.Equal(t, string(tc.code), code, "message: %s", msg)
				require.Equal(t, tc.field, field, "message: %s", msg)
				require.NotEmpty(t, msg)
			}
			if tc.allow != "" || tc.status == http.StatusMethodNotAllowed {
				require.Equal(t, tc.allow, res.Header.Get("Allow"))
			}
			requireNoCORSLeak(t, res, tc)
			after, submitsAfter := snapshot(b.store)
			if tc.stores {
				require.Len(t, after, len(before)+1)
				require.Equal(t, submits+1, submitsAfter)
			} else {
				require.Equal(t, before, after, "a refused request changed the store")
				require.Equal(t, submits, submitsAfter, "a refused request reached Submit")
			}
			if tc.check != nil {
				tc.check(t, b, res)
			}
		})
	}
}

// TestHostilePreflight covers OPTIONS, which openapi.yaml does not document.
func TestHostilePreflight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		origin string
		status int
		acao   string
	}{
		{"listed origin", hostileOrigin, 204, hostileOrigin},
		{"unlisted origin", "https://evil.example", 403, ""},
		{"null origin", "null", 403, ""},
		{"own origin", "http://127.0.0.1:8080", 403, ""},
		{"listed origin on another port", hostileOrigin + ":444", 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{AllowedOrigins: []string{hostileOrigin}})
			seedAlice(b.store)
			before, _ := snapshot(b.store)
			req := httptest.NewRequest("OPTIONS", "/v1/jobs/"+aliceJob+"/cancel", nil)
			req.RemoteAddr, req.Host = "127.0.0.1:40000", "127.0.0.1:8080"
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			res := serveRaw(b, req)
			require.Equal(t, tc.status, res.Status, "%s", res.Body)
			require.Equal(t, tc.acao, res.Header.Get("Access-Control-Allow-Origin"))
			if tc.status == http.StatusForbidden {
				code, field, _ := res.err(t)
				require.Equal(t, string(greenq.CodeForbidden), code)
				require.Equal(t, "Origin", field)
				require.Empty(t, res.Header.Get("Access-Control-Allow-Methods"))
			} else {
				require.Contains(t, res.Header.Get("Access-Control-Allow-Methods"), "POST")
				require.Contains(t, strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "authorization")
			}
			after, _ := snapshot(b.store)
			require.Equal(t, before, after)
		})
	}
}

// hostileRequest builds tc's request from a loopback client, as b.do does,
// then applies tc.mod.
func hostileRequest(tc hostileCase) *http.Request {
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
	}
	req := httptest.NewRequest(tc.method, tc.path, body)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Host = "127.0.0.1:8080"
	switch {
	case tc.open, tc.token == noToken:
	case tc.token == "":
		req.Header.Set("Authorization", "Bearer "+aliceToken)
	default:
		req.Header.Set("Authorization", "Bearer "+tc.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tc.mod != nil {
		tc.mod(req)
	}
	return req
}

// serveRaw serves req without checking it against openapi.yaml.
func serveRaw(b *bundle, req *http.Request) response {
	rec := httptest.NewRecorder()
	b.srv.Handler().ServeHTTP(rec, req)
	return response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// requireNoCORSLeak fails when an answer to a request whose Origin is not
// listed lets that origin read it.
func requireNoCORSLeak(t *testing.T, res response, tc hostileCase) {
	t.Helper()
	origin := hostileRequest(tc).Header.Get("Origin")
	if origin != "" && strings.EqualFold(origin, hostileOrigin) {
		return
	}
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), "an unlisted origin may read the answer")
	require.Empty(t, res.Header.Get("Access-Control-Allow-Credentials"))
}

// seedAlice stores alice's pending job and its output, in both the token
// tenant and the open mode's.
func seedAlice(f *fakeStore) {
	f.put(&greenq.Job{ID: aliceJob, Name: "alice-train", Kind: greenq.KindTrain, State: greenq.StatePending,
		Tenant: "alice", Command: []string{"python", "train.py"}, SubmittedAt: testNow, UpdatedAt: testNow,
		Deadline: testNow.Add(24 * time.Hour), DurationEstimateS: 3600, GPUs: 1})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[aliceJob] = []byte(aliceLogs)
}

// snapshot copies the store's jobs and its Submit count.
func snapshot(f *fakeStore) (map[string]greenq.Job, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]greenq.Job, len(f.jobs))
	for id, j := range maps.All(f.jobs) {
		out[id] = *j
	}
	return out, f.submits
}
