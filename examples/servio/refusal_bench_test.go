package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/resilience"
)

// saturate holds the one slot of an app started with
// -adaptive-network-first 1 and fills its queue (eight), so that every
// further normal-priority request is refused; the cleanup lets them go.
func saturate(tb testing.TB, a *testApp) {
	tb.Helper()
	require.Equal(tb, 1, a.overload.Limit(), "saturate needs -adaptive-network-first 1")
	held, err := a.overload.Acquire(context.Background(), resilience.PriorityNormal)
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 8)
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			if p, err := a.overload.Acquire(ctx, resilience.PriorityNormal); err == nil {
				p.Release(nil)
			}
		}()
	}
	tb.Cleanup(func() {
		cancel()
		for range 8 {
			<-done
		}
		held.Release(nil)
	})
	require.Eventually(tb, func() bool { return a.overload.Queued() == 8 }, 10*time.Second, time.Millisecond, "eight queue")
}

// BenchmarkRefusal: what servio's handler chain costs a refusal in
// process (metrics middleware, route reporting, error wrapper, the
// limiter's refusal and the 503 body), with -adaptive-network-first 1
// saturated so every request is refused. It leaves out net/http's
// reading, parsing and writing, and the syscalls: the whole cost of a
// refusal over the wire is more.
func BenchmarkRefusal(b *testing.B) {
	cfg := testConfig(b, "sqlite")
	cfg.AdaptiveNetworkFirst = 1
	a := startApp(b, cfg)
	saturate(b, a)
	h := a.Handler()
	req := httptest.NewRequest("GET", "/restaurants/1/menu", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusServiceUnavailable {
			b.Fatalf("status %d, want 503", w.Code)
		}
	}
}
