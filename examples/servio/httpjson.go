package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// maxJSONBody bounds every JSON request body; larger ones get 413.
const maxJSONBody = 64 << 10

// httpError is an error with the status and message the client sees.
type httpError struct {
	status int
	msg    string
}

// Error returns the message the client sees.
func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes an already encoded JSON body (cached responses).
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail writes err as a JSON error with the fitting status; unexpected errors
// are logged and reported as 500 without their detail.
func (a *App) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var nf *store.NotFoundError
	var ce *store.ConflictError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		if he.status == http.StatusUnauthorized {
			// RFC 6750 §3.
			v := `Bearer realm="servio"`
			if he == errInvalidToken {
				v += `, error="invalid_token"`
			}
			w.Header().Set("WWW-Authenticate", v)
		}
		writeError(w, he.status, he.msg)
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, nf.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.As(err, &ce):
		writeError(w, http.StatusConflict, ce.Error())
	case errors.Is(err, store.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "invalid cursor")
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case dbUnavailable(err):
		// The database is down, restarting or saturated: say so fast.
		a.log.WarnContext(r.Context(), "database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "database unavailable, retry shortly")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this.
		writeError(w, 499, "client closed request")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "timed out")
	default:
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// decodeJSON reads one JSON object into dst: at most maxJSONBody bytes
// (413 beyond), unknown fields and trailing data refused (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	raw, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSONBytes(raw, dst)
}

// readJSONBody reads a JSON request body of at most maxJSONBody bytes.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return nil, jsonError(err)
	}
	return raw, nil
}

// decodeJSONBytes is decodeJSON on a body already read.
func decodeJSONBytes(raw []byte, dst any) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD and store it.
	if !utf8.Valid(raw) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of input")
	case errors.As(err, &syn):
		return badRequest("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body must be a JSON object")
		}
		return badRequest("field %q must be %s (within range)", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("invalid JSON: %v", err)
}

// pathID parses the {name} path value as a positive id.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("%s must be a positive integer, got %q", name, v)
	}
	return id, nil
}

// recoverer turns a panic in a handler into a logged 500, so one bad
// request never takes the process down.
func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
