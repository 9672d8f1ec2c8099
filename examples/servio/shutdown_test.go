package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGracefulShutdown cancels serve while a slow request is in flight: the
// request still gets its answer, readiness reports draining, and serve
// returns cleanly.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.SimLLMLatency = 300 * time.Millisecond
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app, err := newApp(context.Background(), cfg, log, testAppOptions)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close() })
	// The test's own listener: no port to guess, none another test can take.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // stops serve if the test fails early
	done := make(chan error, 1)
	go func() { done <- serve(ctx, app, ln, log, time.Now()) }()
	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/health/live")
	require.NoError(t, err, "the listener accepts before serve runs, so this waits for it")
	resp.Body.Close()

	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post(base+"/assistant/query", "application/json", strings.NewReader(`{"question":"slow one"}`))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{code: resp.StatusCode}
	}()
	require.Eventually(t, func() bool { return app.sim.calls.Load() == 1 }, 30*time.Second, 5*time.Millisecond)
	cancel()

	r := <-inflight
	require.NoError(t, r.err, "the in-flight request must finish")
	assert.Equal(t, http.StatusOK, r.code)
	assert.NoError(t, <-done, "serve must return cleanly")
	assert.True(t, app.health.Draining(), "readiness reports draining during shutdown")
}
