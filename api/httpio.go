package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/greenq/greenq"
)

// errorBody is the one error shape: {"error": {"code", "message", "field"}}.
type errorBody struct {
	Error *greenq.Error `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may have gone; nothing to do then
}

// writeRaw answers with body, one JSON value encoded as writeJSON would
// (without its trailing newline, which writeRaw adds).
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
}

// writeError maps err through greenq's code table. Internal errors are
// logged and shown without detail.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *greenq.Error
	switch {
	case errors.As(err, &e):
		if e.Code == greenq.CodeInternal {
			s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			e = &greenq.Error{Code: greenq.CodeInternal, Message: "internal error"}
		} else if e.Code == greenq.CodeNotFound && e.Message == greenq.ErrNotFound.Message && err.Error() != e.Error() {
			// Keep the wrapping context ("job x: not found") for people.
			e = &greenq.Error{Code: e.Code, Message: err.Error(), Field: e.Field}
		}
	case errors.Is(err, context.DeadlineExceeded):
		e = greenq.Errorf(greenq.CodeUnavailable, "the request took longer than %s", s.cfg.RequestTimeout)
	case errors.Is(err, context.Canceled):
		e = greenq.Errorf(greenq.CodeUnavailable, "the request was cancelled")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &greenq.Error{Code: greenq.CodeInternal, Message: "internal error"}
	}
	if e.Code == greenq.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="greenq"`)
	}
	writeJSON(w, greenq.HTTPStatus(e.Code), errorBody{Error: e})
}

// decodeJSON reads r's body (at most limit bytes) into v strictly: unknown
// fields, trailing data, invalid UTF-8 and type mismatches are refused with
// the field named.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength > limit {
		drain(r.Body)
		return tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			drain(r.Body)
			return tooLarge(limit)
		}
		return greenq.Invalid("body", "could not be read: %v", err)
	}
	return decodeBytes(body, v)
}

// maxDrain is how much of a refused body is read and discarded so that
// clients which send the whole body before reading (Python's urllib) see
// the 413 instead of a reset connection.
const maxDrain = 16 << 20

func drain(body io.Reader) { _, _ = io.CopyN(io.Discard, body, maxDrain) }

func tooLarge(limit int64) error {
	return &greenq.Error{Code: greenq.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than the limit of %d bytes", limit)}
}

// decodeBytes is decodeJSON after the body is read (also the fuzz target).
func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return greenq.Invalid("body", "is empty: send a JSON object")
	}
	if !utf8.Valid(body) {
		return greenq.Invalid(invalidUTF8Field(body), "is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return greenq.Invalid("body", "has data after the JSON value")
	}
	return nil
}

// invalidUTF8Field names the top-level field whose value holds invalid
// UTF-8 (encoding/json would silently replace it), or "body".
func invalidUTF8Field(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "body"
	}
	for k, raw := range m {
		if !utf8.Valid(raw) && k != "" {
			return k
		}
	}
	return "body"
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return greenq.Invalid("body", "is not valid JSON (at byte %d): %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		// Fields of the embedded request show under its type name.
		field := strings.ReplaceAll(typ.Field, "SubmitRequest.", "")
		if field == "" {
			field = "body"
		}
		want := typ.Type.String()
		switch typ.Type.Kind().String() {
		case "int", "int64":
			want = "an integer"
		case "float64":
			want = "a number"
		case "string":
			want = "a string"
		case "bool":
			want = "true or false"
		case "slice":
			want = "an array"
		case "map", "struct":
			want = "an object"
		}
		return greenq.Invalid(field, "must be %s, got JSON %s", want, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return greenq.Invalid("body", "ends before the JSON value is complete")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if u, err := strconv.Unquote(name); err == nil {
			name = u
		}
		if name == "" {
			return greenq.Invalid("body", "has a field with an empty name")
		}
		return greenq.Invalid(name, "is not a known field")
	}
	return greenq.Invalid("body", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func asError(err error) (*greenq.Error, bool) {
	var e *greenq.Error
	ok := errors.As(err, &e)
	return e, ok
}
