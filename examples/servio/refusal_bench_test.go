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

// BenchmarkRefusal: what a refusal costs servio in process, through its
// whole handler (metrics middleware, route reporting, error wrapper,
// the limiter's refusal and the 503 body), with -adaptive-network-first 1
// and the one slot held and the queue full, so every request is refused.
// The overload benchmark's stand-in refuses in 33–55 µs of CPU over the
// wire (BENCHMARKS.md, "Overload"); this is servio's part apart from
// net/http's reading and writing.
func BenchmarkRefusal(b *testing.B) {
	cfg := testConfig(b, "sqlite")
	cfg.AdaptiveNetworkFirst = 1
	a := startApp(b, cfg)
	held, err := a.overload.Acquire(context.Background(), resilience.PriorityNormal)
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 8)
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			p, err := a.overload.Acquire(ctx, resilience.PriorityNormal)
			if err == nil {
				p.Release(nil)
			}
		}()
	}
	require.Eventually(b, func() bool { return a.overload.Queued() == 8 }, 10*time.Second, time.Millisecond)
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
	b.StopTimer()
	cancel()
	for range 8 {
		<-done
	}
	held.Release(nil)
}
