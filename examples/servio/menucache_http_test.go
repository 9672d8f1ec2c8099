package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getMenu sends GET /restaurants/{rid}/menu with If-None-Match values
// and returns the response and its body.
func getMenu(t *testing.T, a *testApp, rid int64, inm ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", fmt.Sprintf("%s/restaurants/%d/menu", a.URL, rid), nil)
	require.NoError(t, err)
	for _, v := range inm {
		req.Header.Add("If-None-Match", v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// TestMenuConditionalGet: the menu carries a quoted ETag and
// Cache-Control; If-None-Match with that tag — alone, weak, in a list, on
// a second field line, or * — is a 304 with the validators and no body,
// and runs no query (nothing loaded, nothing encoded); another tag or a
// malformed field is a 200. An edit changes the tag: the old one then
// gets the new menu.
func TestMenuConditionalGet(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect)
			resp, body := getMenu(t, a, 1)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			etag := resp.Header.Get("ETag")
			require.Regexp(t, `^"[A-Za-z0-9_-]{22}"$`, etag)
			assert.Equal(t, menuCacheControl, resp.Header.Get("Cache-Control"))
			assert.Equal(t, newMenuDoc(body[:len(body)-1]).ETag, etag, "the tag is the hash of the body served")

			for _, inm := range [][]string{{etag}, {"W/" + etag}, {`"other", ` + etag}, {`"other"`, "W/" + etag}, {"*"}} {
				before := a.queries.Load()
				resp, body := getMenu(t, a, 1, inm...)
				assert.Equal(t, http.StatusNotModified, resp.StatusCode, "If-None-Match: %q", inm)
				assert.Empty(t, body, "If-None-Match: %q", inm)
				assert.Equal(t, etag, resp.Header.Get("ETag"), "a 304 carries the tag")
				assert.Equal(t, menuCacheControl, resp.Header.Get("Cache-Control"), "and the caching rule")
				assert.Equal(t, before, a.queries.Load(), "If-None-Match: %q: a 304 from the cache runs no query", inm)
			}
			for _, inm := range [][]string{{`"other"`}, {etag[:len(etag)-1]}, {"garbage " + etag}, {"**"}} {
				resp, body := getMenu(t, a, 1, inm...)
				assert.Equal(t, http.StatusOK, resp.StatusCode, "If-None-Match: %q", inm)
				assert.NotEmpty(t, body)
			}

			a.admin().doJSON("PATCH", "/menu-items/1", `{"price_cents":4321}`, http.StatusOK, nil)
			resp, body = getMenu(t, a, 1, etag)
			require.Equal(t, http.StatusOK, resp.StatusCode, "the old tag no longer matches after an edit")
			assert.Contains(t, string(body), `"price_cents":4321`)
			assert.NotEqual(t, etag, resp.Header.Get("ETag"))

			resp, _ = getMenu(t, a, 99999, "*")
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, "* matches only a menu that exists")
		})
	}
}

// countingWriter is a ResponseWriter that counts the body bytes written.
type countingWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(code int)        { w.status = code }
func (w *countingWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// TestMenu304WritesNoBody: under the handler itself, a matching
// If-None-Match writes no body byte at all (nothing to encode or send),
// where the 200 writes the menu.
func TestMenu304WritesNoBody(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite")
	resp, body := getMenu(t, a, 1)
	etag := resp.Header.Get("ETag")
	for _, tc := range []struct {
		inm    string
		status int
		bytes  int
	}{{"", http.StatusOK, len(body)}, {etag, http.StatusNotModified, 0}} {
		w := &countingWriter{h: http.Header{}}
		req := httptest.NewRequest("GET", "/restaurants/1/menu", nil)
		if tc.inm != "" {
			req.Header.Set("If-None-Match", tc.inm)
		}
		a.Handler().ServeHTTP(w, req)
		assert.Equal(t, tc.status, w.status)
		assert.Equal(t, tc.bytes, w.n, "body bytes with If-None-Match %q", tc.inm)
	}
}

// TestMenuETagAcrossInstances: two instances sharing PostgreSQL and Redis
// serve a menu with the same tag; after an edit on A, B serves the new tag
// (the cache's pub/sub invalidation reaches its L1) and answers the old
// one with the new menu, not a 304.
func TestMenuETagAcrossInstances(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t, false)
	ra, _ := getMenu(t, a, 2)
	old := ra.Header.Get("ETag")
	for range 2 { // the second is an L1 hit on B
		rb, _ := getMenu(t, b, 2)
		require.Equal(t, old, rb.Header.Get("ETag"), "both instances tag the same menu alike")
	}
	rb, _ := getMenu(t, b, 2, old)
	require.Equal(t, http.StatusNotModified, rb.StatusCode)

	var item struct {
		ID int64 `json:"id"`
	}
	a.doJSON("POST", "/restaurants/2/menu", `{"name":"Focaccia","price_cents":650}`, http.StatusCreated, &item)
	var fresh string
	require.Eventually(t, func() bool {
		rb, body := getMenu(t, b, 2, old)
		fresh = rb.Header.Get("ETag")
		return rb.StatusCode == http.StatusOK && fresh != old && len(body) > 0
	}, invalidationWait, 5*time.Millisecond, "B drops the old tag after A's edit")
	ra, _ = getMenu(t, a, 2)
	assert.Equal(t, fresh, ra.Header.Get("ETag"), "and both serve the same new tag")
	rb, _ = getMenu(t, b, 2, fresh)
	assert.Equal(t, http.StatusNotModified, rb.StatusCode)
}

// FuzzIfNoneMatch: any If-None-Match value is parsed without panicking,
// and a list holding the tag (strong or weak) among well-formed others
// always matches.
func FuzzIfNoneMatch(f *testing.F) {
	for _, s := range []string{"", "*", `"a"`, `W/"a", "b"`, `"a`, `,,, W/`, `"x" "y"`, "* , \"z\""} {
		f.Add(s, "tag")
	}
	f.Fuzz(func(t *testing.T, header, tag string) {
		etag := `"` + tag + `"`
		_ = etagMatches([]string{header}, etag)
		for i := 0; i < len(tag); i++ {
			if tag[i] == '"' || tag[i] < 0x21 || tag[i] == 0x7f {
				return // not an etagc: no valid tag to look for
			}
		}
		assert.True(t, etagMatches([]string{`"zz", W/` + etag + `, "q"`}, etag), "weak in a list")
		assert.True(t, etagMatches([]string{header, etag}, etag), "on a second field line after %q", header)
	})
}

// BenchmarkMenu measures GET /restaurants/1/menu served from the L1 cache,
// with a 200 (the body written) and with a matching If-None-Match (304),
// in process (no network), reporting the body bytes each writes.
func BenchmarkMenu(b *testing.B) {
	cfg := testConfig(b, "sqlite")
	cfg.RateLimit = false
	a := startApp(b, cfg)
	h := a.Handler()
	w := &countingWriter{h: http.Header{}}
	req := httptest.NewRequest("GET", "/restaurants/1/menu", nil)
	h.ServeHTTP(w, req)
	etag := w.h.Get("ETag")
	for _, tc := range []struct {
		name, inm string
		status    int
	}{{"200", "", http.StatusOK}, {"304", etag, http.StatusNotModified}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/restaurants/1/menu", nil)
			if tc.inm != "" {
				req.Header.Set("If-None-Match", tc.inm)
			}
			b.ReportAllocs()
			body := 0
			for b.Loop() {
				w := &countingWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.status != tc.status {
					b.Fatalf("status %d, want %d", w.status, tc.status)
				}
				body = w.n
			}
			b.ReportMetric(float64(body), "body-bytes/op")
		})
	}
}
