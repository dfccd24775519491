// Package httpx holds the HTTP plumbing the provider adapters share: one GET
// that maps 429 to forecast.RateLimitError, other non-2xx statuses to
// forecast.StatusError, and caps how much of an answer is read.
package httpx
