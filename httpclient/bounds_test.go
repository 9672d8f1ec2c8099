package httpclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingBase counts the attempts that reach the base transport.
type countingBase struct {
	next     http.RoundTripper
	attempts atomic.Int64
}

func (c *countingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	c.attempts.Add(1)
	return c.next.RoundTrip(req)
}

func (c *countingBase) CloseIdleConnections() { closeIdle(c.next) }

func (c *countingBase) wrap(rt http.RoundTripper) http.RoundTripper { c.next = rt; return c }

// TestBreakerRatioUnderConcurrency reproduces issue 17: the failure ratio
// was computed over gobreaker's Counts.Requests, which includes calls still
// in flight, so 20 failures in a row beside 40 slow requests in flight left
// the breaker closed.
func TestBreakerRatioUnderConcurrency(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inflight sync.WaitGroup
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Header.Get("X-Slow") != "" {
			inflight.Done()
			<-release
			return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
		}
		return &http.Response{StatusCode: http.StatusInternalServerError, Body: http.NoBody, Header: http.Header{}}, nil
	})
	b, err := NewBreaker(base, BreakerConfig{FailureRatio: 0.5, MinRequests: 10, ConsecutiveFailures: 1 << 30})
	require.NoError(t, err)
	var wg sync.WaitGroup
	const slow = 40
	inflight.Add(slow)
	for range slow {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://api.invalid/", nil)
			req.Header.Set("X-Slow", "1")
			resp, err := b.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	inflight.Wait()
	for range 20 {
		req, _ := http.NewRequest(http.MethodGet, "http://api.invalid/", nil)
		resp, err := b.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
	}
	st, ok := b.State("api.invalid")
	require.True(t, ok)
	assert.Equal(t, "open", st.String(), "20 of 20 finished requests failed")
	close(release)
	wg.Wait()
}

// TestBreakerEvictionKeepsOpenHosts reproduces issue 17: evicting a host
// to make room dropped open breakers, so a dead host got traffic again.
func TestBreakerEvictionKeepsOpenHosts(t *testing.T) {
	t.Parallel()
	var calls sync.Map
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		n, _ := calls.LoadOrStore(req.URL.Host, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		status := http.StatusOK
		if strings.HasPrefix(req.URL.Host, "dead") {
			status = http.StatusServiceUnavailable
		}
		return &http.Response{StatusCode: status, Body: http.NoBody, Header: http.Header{}}, nil
	})
	b, err := NewBreaker(base, BreakerConfig{ConsecutiveFailures: 1, OpenTimeout: time.Hour, MaxHosts: 2})
	require.NoError(t, err)
	do := func(host string) error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		resp, err := b.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	require.NoError(t, do("dead1.invalid"))
	require.NoError(t, do("dead2.invalid"))
	for _, h := range []string{"ok1.invalid", "ok2.invalid", "ok3.invalid"} {
		_ = do(h)
	}
	for _, h := range []string{"dead1.invalid", "dead2.invalid"} {
		assert.ErrorIs(t, do(h), ErrBreakerOpen, "host %s", h)
		n, _ := calls.Load(h)
		assert.Equal(t, int64(1), n.(*atomic.Int64).Load(), "dead host %s got traffic again after eviction", h)
	}
}

// TestRetryRefusedPost reproduces issue 17: a POST whose connection was
// refused was never sent, so it is safe to resend; it was never retried.
func TestRetryRefusedPost(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(http.ResponseWriter, *http.Request) {})
	url := srv.URL
	srv.Close() // nothing listens on the port any more
	probe := &countingBase{}
	c := newTestClient(t, Config{DisableBreaker: true, DisableMetrics: true, WrapBase: probe.wrap,
		Retry: RetryConfig{MaxAttempts: 3, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond}})
	resp, err := c.Post(url, "text/plain", strings.NewReader("order"))
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Equal(t, int64(3), probe.attempts.Load(), "a refused POST was never sent: retry it")
}

// TestRetryPostAfterWriteNotRetried: a POST that failed after it was
// written may have been applied; it must not be resent without an
// idempotency key.
func TestRetryPostAfterWriteNotRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var served sync.WaitGroup
	t.Cleanup(served.Wait) // cleanups run last first: Close, then Wait
	served.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the request, then drop the connection without answering.
			_, _ = http.ReadRequest(bufio.NewReader(conn))
			conn.Close()
		}
	})
	t.Cleanup(func() { ln.Close() })
	probe := &countingBase{}
	c := newTestClient(t, Config{DisableBreaker: true, DisableMetrics: true, WrapBase: probe.wrap,
		Retry: RetryConfig{MaxAttempts: 3, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond}})
	resp, err := c.Post("http://"+ln.Addr().String(), "text/plain", strings.NewReader("order"))
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Equal(t, int64(1), probe.attempts.Load(), "a written POST may have been applied")
}

// TestPoolWaitIsNotAHostFailure reproduces issue 17: requests whose
// deadline ended while they waited for a pooled connection (the host was
// healthy, the pool full) counted as failures of the host and opened its
// breaker.
func TestPoolWaitIsNotAHostFailure(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hold") != "" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	c := newTestClient(t, Config{MaxConnsPerHost: 1, DisableRetry: true,
		Breaker: BreakerConfig{ConsecutiveFailures: 3, OpenTimeout: time.Hour}})
	held := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Hold", "1")
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		held <- err
	}()
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond) // polling the server's count, not timing
	}
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
		}
		require.ErrorIs(t, err, context.DeadlineExceeded, "waited for the pool's only connection")
	}
	once.Do(func() { close(release) })
	require.NoError(t, <-held)
	code, err := get(t, c, srv.URL)
	require.NoError(t, err, "a full pool opened the healthy host's breaker")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, int64(2), srv.requests.Load())
}

// TestRetryAfterLongerThanMaxDelay reproduces issue 17: a Retry-After
// longer than MaxDelay was cut to MaxDelay, so the client retried before
// the server allowed. It now returns the server's answer (with its
// Retry-After) at once.
func TestRetryAfterLongerThanMaxDelay(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := newTestClient(t, Config{DisableBreaker: true, DisableMetrics: true,
		Retry: RetryConfig{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "120", resp.Header.Get("Retry-After"))
	assert.Equal(t, int64(1), srv.requests.Load(), "retried before the server's Retry-After")
}

var _ = errors.New
