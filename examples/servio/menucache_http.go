package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// HTTP caching of GET /restaurants/{id}/menu.
//
// The response carries a strong ETag, a hash of the encoded menu computed
// once when the menu is loaded and cached with it (menuDoc), so every
// instance gives the same menu the same tag, and a menu edit — which
// invalidates the cached menu on every instance (service.invalidate,
// cache pub/sub) — changes the tag everywhere with it. If-None-Match
// (a list, weak tags compared weakly, or *) that matches answers 304 with
// the ETag and Cache-Control and no body: nothing is encoded or written.
//
// Cache-Control is "public, max-age=5, stale-while-revalidate=30": a
// browser or CDN reuses a menu for 5 s without asking, then may show it
// once more (up to 30 s later) while it revalidates in the background,
// which costs a 304. So a client sees an edit at most 5 s late, or 35 s
// for one view after a long pause — the price of serving repeat views
// from the edge. servio's own instances serve an edit at once; orders are
// priced from the database, never from a menu a client kept.
//
// The representation does not vary by request: servio does not compress
// (a proxy or CDN that does must tag its encodings apart, as they do) and
// the menu is public, the same with or without a token, so no Vary header
// is needed; one that varied would need a tag per representation and Vary.
const menuCacheControl = "public, max-age=5, stale-while-revalidate=30"

// menuDoc is a restaurant's menu as the cache holds it: the encoded
// response and its entity tag.
type menuDoc struct {
	ETag string // quoted, strong: "…"
	Body []byte // the JSON response
}

// newMenuDoc tags an encoded menu: 128 bits of its SHA-256, base64url.
func newMenuDoc(body []byte) menuDoc {
	sum := sha256.Sum256(body)
	return menuDoc{ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`, Body: body}
}

// marshal is the cached form: the tag, a newline, the body (compact JSON
// holds no raw newline).
func (d menuDoc) marshal() []byte {
	b := make([]byte, 0, len(d.ETag)+1+len(d.Body))
	return append(append(append(b, d.ETag...), '\n'), d.Body...)
}

// unmarshalMenuDoc reads the cached form; anything else (a value of an
// older servio, a corrupt one) is an error, which the cache counts, deletes
// and treats as a miss.
func unmarshalMenuDoc(data []byte, d *menuDoc) error {
	tag, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || !json.Valid(body) {
		return errors.New("servio: cached value is not a tagged menu")
	}
	d.ETag, d.Body = string(tag), append(d.Body[:0], body...)
	return nil
}

// serveMenu writes a menu with its validators, or 304 when the request's
// If-None-Match matches.
func serveMenu(w http.ResponseWriter, r *http.Request, d menuDoc) {
	h := w.Header()
	h.Set("ETag", d.ETag)
	h.Set("Cache-Control", menuCacheControl)
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && etagMatches(inm, d.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeRaw(w, http.StatusOK, d.Body)
}

// etagMatches reports whether the If-None-Match field values match etag
// (RFC 9110 §13.1.2): "*", or a list of entity tags one of which equals
// etag by the weak comparison (W/ ignored on both sides). A malformed
// member ends its field value's list: sending the whole response is
// always correct.
func etagMatches(values []string, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				if rest := strings.TrimLeft(v[1:], " \t"); rest == "" || rest[0] == ',' {
					return true
				}
				break
			}
			v = strings.TrimPrefix(v, "W/")
			if len(v) < 2 || v[0] != '"' {
				break
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
			if v != "" && v[0] != ',' && v[0] != ' ' && v[0] != '\t' {
				break
			}
		}
	}
	return false
}
