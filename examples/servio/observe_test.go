package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOTLPEndpointBaseOrFull: -otlp-endpoint takes the collector's base URL
// or the full /v1/metrics one, and both post to /v1/metrics.
func TestOTLPEndpointBaseOrFull(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(col.Close)
	for _, ep := range []string{col.URL, col.URL + "/v1/metrics"} {
		cfg := testConfig(t, "sqlite")
		cfg.OTLPEndpoint = ep
		app := startApp(t, cfg)
		app.do(http.MethodGet, "/health/live", "")
		mu.Lock()
		paths = nil
		mu.Unlock()
		require.NoError(t, app.metrics.ForceFlush(context.Background()))
		mu.Lock()
		assert.Equal(t, []string{"/v1/metrics"}, paths, "-otlp-endpoint %s", ep)
		mu.Unlock()
	}
}
