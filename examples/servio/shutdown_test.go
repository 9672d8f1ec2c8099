package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
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
	cfg.Addr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app, err := newApp(context.Background(), cfg, log, testAppOptions)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, app, log, time.Now()) }()
	base := "http://" + cfg.Addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health/live")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)

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
	require.Eventually(t, func() bool { return app.sim.calls.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()

	r := <-inflight
	require.NoError(t, r.err, "the in-flight request must finish")
	assert.Equal(t, http.StatusOK, r.code)
	assert.NoError(t, <-done, "serve must return cleanly")
	assert.True(t, app.health.Draining(), "readiness reports draining during shutdown")
}
