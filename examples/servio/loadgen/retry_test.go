package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestWriteRetriedWithSameKey: a write answered 503 is sent again with
// the same Idempotency-Key and counts once, as a success; a read is not
// retried.
func TestWriteRetriedWithSameKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	reads := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			reads++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if seen[key]++; seen[key] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	e := &engine{o: &options{target: srv.URL}, client: srv.Client()}
	e.measure.Store(true)
	rec := newRecorder()
	e.do(op{route: "POST /orders", method: http.MethodPost, path: "/orders", body: []byte(`{}`), key: "k1"}, time.Now(), rec)
	e.do(op{route: "GET /orders/{id}", method: http.MethodGet, path: "/orders/1"}, time.Now(), rec)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"k1": 2}, seen, "the write is retried once, with its key")
	assert.Equal(t, 1, reads, "a read is not retried")
	assert.Equal(t, uint64(1), rec.errs, "only the read's 503 counts as an error")
}
