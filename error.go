package greenq

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorCode names a kind of failure. One table (HTTPStatus, ExitCode) maps
// each code to what HTTP clients and shell scripts see.
type ErrorCode string

// Error codes, as they appear in the API's error body.
const (
	CodeInvalidArgument      ErrorCode = "invalid_argument"       // 400, exit 2
	CodeUnauthenticated      ErrorCode = "unauthenticated"        // 401, exit 2
	CodeForbidden            ErrorCode = "forbidden"              // 403, exit 2
	CodeNotFound             ErrorCode = "not_found"              // 404, exit 1
	CodeMethodNotAllowed     ErrorCode = "method_not_allowed"     // 405 (with Allow), exit 2
	CodeConflict             ErrorCode = "conflict"               // 409, exit 1
	CodeTooLarge             ErrorCode = "too_large"              // 413, exit 2
	CodeUnsupportedMediaType ErrorCode = "unsupported_media_type" // 415, exit 2
	CodeRateLimited          ErrorCode = "rate_limited"           // 429, exit 1
	CodeUnavailable          ErrorCode = "unavailable"            // 503, exit 1
	CodeInternal             ErrorCode = "internal"               // 500, exit 1
)

// Error is greenq's application error: a code, a message for people, and,
// for bad input, the field that was wrong.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Field   string    `json:"field,omitempty"`
}

// Error implements error: the field, when set, then the message.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Invalid returns a CodeInvalidArgument error naming field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Errorf returns an error with code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned (wrapped) when a job or region does not exist, or
// belongs to another tenant.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// ErrorCodeOf returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// errorTable is the one place codes become HTTP statuses and exit codes.
var errorTable = map[ErrorCode]struct{ status, exit int }{
	CodeInvalidArgument:      {http.StatusBadRequest, 2},
	CodeUnauthenticated:      {http.StatusUnauthorized, 2},
	CodeForbidden:            {http.StatusForbidden, 2},
	CodeNotFound:             {http.StatusNotFound, 1},
	CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, 2},
	CodeConflict:             {http.StatusConflict, 1},
	CodeTooLarge:             {http.StatusRequestEntityTooLarge, 2},
	CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, 2},
	CodeRateLimited:          {http.StatusTooManyRequests, 1},
	CodeUnavailable:          {http.StatusServiceUnavailable, 1},
	CodeInternal:             {http.StatusInternalServerError, 1},
}

// HTTPStatus returns the HTTP status for code (500 for an unknown code).
func HTTPStatus(code ErrorCode) int {
	if m, ok := errorTable[code]; ok {
		return m.status
	}
	return http.StatusInternalServerError
}

// ExitCode returns the process exit status for code: 2 for bad usage or
// refused input, 1 for other failures.
func ExitCode(code ErrorCode) int {
	if m, ok := errorTable[code]; ok {
		return m.exit
	}
	return 1
}
