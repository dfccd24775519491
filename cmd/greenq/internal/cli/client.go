package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// client speaks greenq's HTTP API.
type client struct {
	base  string
	token string
	http  *http.Client
	// notes receives a line for each wait on a 429 (stderr).
	notes io.Writer
	sleep func(ctx context.Context, d time.Duration) error
}

// Bounds of the waits on 429 Too Many Requests: at most maxRetries waits
// of at most maxRetryWait each, as the server's Retry-After asks (gh and
// client-go do the same). A server asking for longer is not waited for.
const (
	maxRetries   = 5
	maxRetryWait = 30 * time.Second
)

func (g *globals) client() *client {
	base := g.env("GREENQ_API_URL", g.apiURL)
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	return &client{
		base:  strings.TrimRight(base, "/"),
		token: g.getenv("GREENQ_TOKEN"),
		http:  &http.Client{Timeout: 30 * time.Second},
		notes: g.stderr,
		sleep: g.sleep,
	}
}

// do sends a request and decodes a 2xx JSON answer into out (when non-nil).
// An API error body becomes a *greenq.Error, so exit codes follow the table.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	raw, err := c.raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

func (c *client) raw(ctx context.Context, method, path string, body any) ([]byte, error) {
	data, _, err := c.rawHeader(ctx, method, path, body)
	return data, err
}

// rawHeader is raw that also returns the answer's headers. A 429 is waited
// out and retried (bounded: maxRetries, maxRetryWait), with a note on
// stderr each time; a refused request did nothing, so a retry is safe.
func (c *client) rawHeader(ctx context.Context, method, path string, body any) ([]byte, http.Header, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		data, h, status, err := c.once(ctx, method, path, payload, body != nil)
		if status != http.StatusTooManyRequests || attempt == maxRetries {
			return data, h, err
		}
		wait, ok := retryAfter(h.Get("Retry-After"), attempt)
		if !ok {
			return data, h, err
		}
		if c.notes != nil {
			fmt.Fprintf(c.notes, "greenq: the API is rate limiting this token; retrying in %s (%d of %d)\n", humanDuration(wait), attempt+1, maxRetries)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
}

// retryAfter reads a Retry-After (seconds or an HTTP date); without one it
// backs off 1 s, 2 s, 4 s… It reports false for a wait over maxRetryWait.
func retryAfter(v string, attempt int) (time.Duration, bool) {
	wait := time.Second << attempt
	if v = strings.TrimSpace(v); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			wait = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			wait = max(time.Until(t), 0)
		}
	}
	return wait, wait <= maxRetryWait
}

// once sends one request. For a status of 300 or more the error is the
// API's (*greenq.Error); the status and headers come back either way.
func (c *client) once(ctx context.Context, method, path string, payload []byte, hasBody bool) ([]byte, http.Header, int, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("build request: %w", err)
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, 0, ctx.Err()
		}
		return nil, nil, 0, greenq.Errorf(greenq.CodeUnavailable, "reach the greenq API at %s (is `greenq server` or `greenq dev` running? set --api or GREENQ_API_URL): %v", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.Header, resp.StatusCode, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error *greenq.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != nil {
			return nil, resp.Header, resp.StatusCode, e.Error
		}
		return nil, resp.Header, resp.StatusCode, greenq.Errorf(codeForStatus(resp.StatusCode), "%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, resp.Header, resp.StatusCode, nil
}

func codeForStatus(status int) greenq.ErrorCode {
	for _, c := range []greenq.ErrorCode{greenq.CodeInvalidArgument, greenq.CodeUnauthenticated, greenq.CodeNotFound,
		greenq.CodeForbidden, greenq.CodeMethodNotAllowed, greenq.CodeUnsupportedMediaType,
		greenq.CodeConflict, greenq.CodeTooLarge, greenq.CodeRateLimited, greenq.CodeUnavailable} {
		if greenq.HTTPStatus(c) == status {
			return c
		}
	}
	return greenq.CodeInternal
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jsonUnmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
