package forecast

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoData is returned (wrapped) when a provider answers without any usable
// point for the zone and interval asked for.
var ErrNoData = errors.New("no data")

// ErrBadPayload is returned (wrapped) when a provider's answer cannot be
// parsed or holds values that are not intensities (NaN, negative, unknown
// units, unordered times).
var ErrBadPayload = errors.New("malformed payload")

// RateLimitError is returned (wrapped) when a provider answers 429. RetryAfter
// is how long the provider asked callers to wait (0 when it did not say).
type RateLimitError struct {
	Provider   string
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s: rate limited, retry after %s", e.Provider, e.RetryAfter)
	}
	return fmt.Sprintf("%s: rate limited", e.Provider)
}

// StatusError is returned (wrapped) when a provider answers with an HTTP
// status other than 2xx or 429. Body holds the start of the answer.
type StatusError struct {
	Provider string
	Code     int
	Body     string
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Provider, e.Code, e.Body)
}
