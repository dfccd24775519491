package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/greenq/greenq"
)

// client speaks greenq's HTTP API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func (g *globals) client() *client {
	base := g.env("GREENQ_API_URL", g.apiURL)
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	return &client{
		base:  strings.TrimRight(base, "/"),
		token: g.getenv("GREENQ_TOKEN"),
		http:  &http.Client{Timeout: 30 * time.Second},
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

// rawHeader is raw that also returns the answer's headers.
func (c *client) rawHeader(ctx context.Context, method, path string, body any) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, greenq.Errorf(greenq.CodeUnavailable, "reach the greenq API at %s (is `greenq server` or `greenq dev` running? set --api or GREENQ_API_URL): %v", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error *greenq.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != nil {
			return nil, nil, e.Error
		}
		return nil, nil, greenq.Errorf(codeForStatus(resp.StatusCode), "%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, resp.Header, nil
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
