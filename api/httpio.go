package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
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
			// Keep the context that says what was not found ("job x: not
			// found"), without the verbs each layer wrapped it in.
			e = &greenq.Error{Code: e.Code, Message: innermostContext(err, e), Field: e.Field}
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

// innermostContext returns the message of the innermost error in err's
// chain that wraps e: the one that names the thing ("job x: not found"),
// not the verbs around it ("cancel job x: cancel: …").
func innermostContext(err error, e *greenq.Error) string {
	msg := err.Error()
	for cur := err; cur != nil; cur = errors.Unwrap(cur) {
		if cur == error(e) {
			break
		}
		msg = cur.Error()
	}
	return msg
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
	return strictNames(body, reflect.TypeOf(v))
}

// strictNames refuses two things encoding/json quietly accepts but the
// OpenAPI schema (and most other parsers, e.g. a validating proxy) read
// differently: a member given twice in one object (encoding/json keeps the
// last), and a field named in another case ("COMMAND", "Command"), which
// encoding/json matches to the field. It runs after a successful decode,
// so body is one valid JSON value within the decoder's depth limit.
func strictNames(body []byte, t reflect.Type) error {
	err := walkNames(json.NewDecoder(bytes.NewReader(body)), t)
	if err == nil {
		return nil
	}
	ne, ok := err.(*nameError)
	if !ok {
		return greenq.Invalid("body", "is not valid JSON: %v", err)
	}
	var field strings.Builder
	for i := len(ne.path) - 1; i >= 0; i-- {
		if seg := ne.path[i]; strings.HasPrefix(seg, "[") || field.Len() == 0 {
			field.WriteString(seg)
		} else {
			field.WriteString("." + seg)
		}
	}
	if field.Len() == 0 {
		field.WriteString("body")
	}
	return greenq.Invalid(field.String(), "%s", ne.msg)
}

// nameError is a refused member name; path runs from it outwards (struct
// fields by name, array elements as [i]), as the API's fields do
// (jobs[1].deadline). A repeated map key names the map.
type nameError struct {
	path []string
	msg  string
}

func (e *nameError) Error() string { return e.msg }

// nameRules is what walkNames needs to know of a Go type.
type nameRules struct {
	fields map[string]reflect.Type // a struct's JSON names; nil otherwise
	elem   reflect.Type            // a map's, slice's or array's element
	free   bool                    // any names: not a struct, or one with its own UnmarshalJSON
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rulesCache      sync.Map // reflect.Type → *nameRules
)

func rulesOf(t reflect.Type) *nameRules {
	if t == nil {
		return &nameRules{free: true}
	}
	if r, ok := rulesCache.Load(t); ok {
		return r.(*nameRules)
	}
	r := &nameRules{free: true}
	et := t
	for et.Kind() == reflect.Pointer {
		et = et.Elem()
	}
	switch {
	case et.Implements(unmarshalerType) || reflect.PointerTo(et).Implements(unmarshalerType):
	case et.Kind() == reflect.Struct:
		r.fields, r.free = jsonFields(et, nil), false
	case et.Kind() == reflect.Map, et.Kind() == reflect.Slice, et.Kind() == reflect.Array:
		r.elem = et.Elem()
	}
	got, _ := rulesCache.LoadOrStore(t, r)
	return got.(*nameRules)
}

// walkNames reads one value from dec, checking the member names of objects
// that decode into t (nil: any names, only no repeats).
func walkNames(dec *json.Decoder, t reflect.Type) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	rules := rulesOf(t)
	switch tok {
	case json.Delim('{'):
		var few []string         // names seen, while few
		var many map[string]bool // then
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := kt.(string)
			elem := rules.elem
			if !rules.free {
				ft, ok := rules.fields[name]
				if !ok {
					return &nameError{path: []string{name}, msg: "is not a known field (names are case-sensitive)"}
				}
				elem = ft
			}
			if many == nil && len(few) == 16 {
				many = map[string]bool{}
				for _, n := range few {
					many[n] = true
				}
			}
			dup := false
			if many != nil {
				dup, many[name] = many[name], true
			} else {
				dup, few = slices.Contains(few, name), append(few, name)
			}
			if dup {
				var path []string
				if !rules.free {
					path = []string{name}
				}
				return &nameError{path: path, msg: fmt.Sprintf("is given more than once (%q)", name)}
			}
			if err := walkNames(dec, elem); err != nil {
				if ne, ok := err.(*nameError); ok && !rules.free {
					ne.path = append(ne.path, name)
				}
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := walkNames(dec, rules.elem); err != nil {
				if ne, ok := err.(*nameError); ok {
					ne.path = append(ne.path, fmt.Sprintf("[%d]", i))
				}
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

// jsonFields adds the JSON names of struct t's fields, promoted ones
// included, to into (a new map when nil) with their types. A shallower
// field hides a promoted one of the same name, as in encoding/json.
func jsonFields(t reflect.Type, into map[string]reflect.Type) map[string]reflect.Type {
	if into == nil {
		into = map[string]reflect.Type{}
	}
	var embedded []reflect.Type
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if ft := f.Type; f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := into[name]; !ok {
			into[name] = f.Type
		}
	}
	for _, et := range embedded {
		jsonFields(et, into)
	}
	return into
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
		field := indexPath(strings.ReplaceAll(typ.Field, "SubmitRequest.", ""))
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

// indexPath writes encoding/json's element path (jobs.1.gpus) as the API's
// fields do (jobs[1].gpus).
func indexPath(field string) string {
	parts := strings.Split(field, ".")
	var b strings.Builder
	for i, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 64); err == nil && i > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func asError(err error) (*greenq.Error, bool) {
	var e *greenq.Error
	ok := errors.As(err, &e)
	return e, ok
}
