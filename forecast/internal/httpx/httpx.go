package httpx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// MaxBody caps how much of an answer is read: a week of 5-minute points is
// well under 1 MiB, so 16 MiB only guards against a runaway server.
const MaxBody = 16 << 20

// Get performs req with client and returns the body of a 2xx answer. Now is
// used to turn an HTTP-date Retry-After into a duration.
func Get(ctx context.Context, client *http.Client, req *http.Request, provider string, now func() time.Time) ([]byte, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", req.URL.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &forecast.RateLimitError{Provider: provider, RetryAfter: RetryAfter(resp.Header.Get("Retry-After"), now())}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, &forecast.StatusError{Provider: provider, Code: resp.StatusCode, Body: snippet(body)}
	}
	return body, nil
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or unreadable.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Client returns c, or a client with a 30 s timeout when c is nil.
func Client(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Now returns now, or time.Now when now is nil.
func Now(now func() time.Time) func() time.Time {
	if now != nil {
		return now
	}
	return time.Now
}

// BaseURL returns a provider's base URL, def when raw is empty, without a
// trailing slash; a URL that is not absolute is a config error naming
// providers.<provider>.base_url.
func BaseURL(provider, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, greenq.Invalid("providers."+provider+".base_url", "%q is not an absolute URL", raw)
	}
	return u, nil
}
