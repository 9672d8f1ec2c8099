package main

import (
	"encoding/json"
	"net/http"
	"strings"
)

// maxHeaderBytes bounds a request's header fields (names and values, 4
// bytes each for ": " and CRLF); larger ones get a JSON 431. net/http's
// own limit (http.Server.MaxHeaderBytes, 1 MiB by default) stays as the
// outer bound: a header beyond it never reaches a handler, and net/http
// answers that one itself in plain text.
const maxHeaderBytes = 64 << 10

// jsonErrors makes every error servio answers a JSON {"error": "..."}:
// the mux's own 404, 405 and path-cleaning redirects, the health and
// Prometheus handlers' plain-text errors, and answers written with
// http.Error anywhere below. It also answers oversized headers with 431
// and methods other than GET and HEAD on /health and below with 405
// (the Prometheus handler would serve a DELETE).
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r.Header) > maxHeaderBytes {
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "request header fields larger than 64 KiB")
			return
		}
		if (r.URL.Path == "/health" || strings.HasPrefix(r.URL.Path, "/health/")) && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET, HEAD")
			return
		}
		next.ServeHTTP(&jsonErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// jsonErrorWriter replaces the body of an error (status ≥ 400) or a
// redirect that is not JSON already with servio's JSON error shape.
type jsonErrorWriter struct {
	http.ResponseWriter
	r        *http.Request
	wrote    bool
	replaced bool
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *jsonErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader writes the status; a non-JSON error or redirect gets its
// JSON body here, and the handler's own body is dropped.
func (w *jsonErrorWriter) WriteHeader(code int) {
	if w.wrote {
		w.ResponseWriter.WriteHeader(code) // net/http logs the superfluous call
		return
	}
	w.wrote = true
	h := w.Header()
	loc := h.Get("Location")
	isErr := code >= 400 || (code >= 300 && code < 400 && loc != "")
	if !isErr || strings.Contains(h.Get("Content-Type"), "json") {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	body := map[string]string{"error": strings.ToLower(http.StatusText(code))}
	switch {
	case code == http.StatusNotFound:
		body["error"] = "no route " + w.r.Method + " " + w.r.URL.Path
	case loc != "":
		body["error"] = "the canonical path of this request is " + loc
		body["location"] = loc
	}
	b, _ := json.Marshal(body)
	h.Del("Content-Length")
	h.Del("X-Content-Type-Options")
	h.Set("Content-Type", "application/json")
	w.ResponseWriter.WriteHeader(code)
	if w.r.Method != http.MethodHead {
		_, _ = w.ResponseWriter.Write(append(b, '\n'))
	}
}

// Write writes the body, or drops it when WriteHeader replaced it.
func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush flushes the underlying writer when it can.
func (w *jsonErrorWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
