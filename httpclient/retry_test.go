package httpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// retryClient is a client with only the retry layer, a recorded sleep and
// a deterministic jitter (the full ceiling, resilience.JitterNone).
func retryClient(t *testing.T, ro RetryConfig) (*http.Client, *sleepRecorder) {
	t.Helper()
	rec := &sleepRecorder{}
	if ro.Clock == nil {
		ro.Clock = rec
	}
	if ro.Jitter == resilience.JitterFull {
		ro.Jitter = resilience.JitterNone
	}
	return newTestClient(t, Config{Retry: ro, DisableBreaker: true, DisableMetrics: true}), rec
}

// failFirst returns a handler answering status to the first n requests and
// 200 "ok" afterwards.
func failFirst(n int64, status int, header http.Header) http.HandlerFunc {
	var calls atomic.Int64
	return func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= n {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "try later")
			return
		}
		_, _ = io.WriteString(w, "ok")
	}
}

func TestRetryOnStatusThenSuccess(t *testing.T) {
	t.Parallel()
	for _, status := range []int{429, 502, 503, 504} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			srv := newCountingServer(t, failFirst(2, status, nil))
			var retries []int
			c, rec := retryClient(t, RetryConfig{OnRetry: func(_ *http.Request, n int, resp *http.Response, _ error, _ time.Duration) {
				retries = append(retries, n)
				assert.Equal(t, status, resp.StatusCode)
			}})
			resp, err := c.Get(srv.URL)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "ok", string(body))
			assert.Equal(t, int64(3), srv.requests.Load())
			assert.Equal(t, []int{1, 2}, retries)
			assert.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, rec.Waits(),
				"wanted exponential ceilings from BaseDelay")
		})
	}
}

func TestRetryGivesUpWithLastResponse(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(100, http.StatusServiceUnavailable, nil))
	c, rec := retryClient(t, RetryConfig{MaxAttempts: 3, BaseDelay: time.Second, MaxDelay: 1500 * time.Millisecond})
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "try later", string(body), "the last response should come back unread")
	assert.Equal(t, int64(3), srv.requests.Load())
	assert.Equal(t, []time.Duration{time.Second, 1500 * time.Millisecond}, rec.Waits(), "wanted the second wait capped at MaxDelay")

	// Giving up must not empty the pool (go-retryablehttp calls
	// CloseIdleConnections here): the next request reuses the connection.
	resp, err = c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, int64(1), srv.conns.Load(), "wanted all 3 attempts and the next request on one connection")
}

func TestRetryNotOnOtherStatuses(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 401, 404, 409, 500, 501} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			srv := newCountingServer(t, failFirst(1, status, nil))
			c, _ := retryClient(t, RetryConfig{})
			resp, err := c.Get(srv.URL)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, status, resp.StatusCode)
			assert.Equal(t, int64(1), srv.requests.Load())
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	const gaveUp = -1 // the 429 comes back at once: the server asked for too long
	cases := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "2", 2 * time.Second},
		{"seconds too long", "3600", gaveUp},
		{"huge", "99999999999999999999999", gaveUp},
		{"http date", now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second},
		{"http date too long", now.Add(time.Hour).Format(http.TimeFormat), gaveUp},
		{"past date falls back to backoff", now.Add(-time.Hour).Format(http.TimeFormat), 100 * time.Millisecond},
		{"garbage falls back to backoff", "soon", 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newCountingServer(t, failFirst(1, http.StatusTooManyRequests, http.Header{"Retry-After": {tc.value}}))
			rec := &sleepRecorder{now: now}
			c, _ := retryClient(t, RetryConfig{MaxDelay: 5 * time.Second, Clock: rec})
			resp, err := c.Get(srv.URL)
			require.NoError(t, err)
			resp.Body.Close()
			if tc.want == gaveUp {
				assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
				assert.Equal(t, tc.value, resp.Header.Get("Retry-After"))
				assert.Empty(t, rec.Waits())
				assert.Equal(t, int64(1), srv.requests.Load(), "never resend before the server allows")
				return
			}
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, []time.Duration{tc.want}, rec.Waits())
		})
	}
}

func TestRetryOnlyReplayableRequests(t *testing.T) {
	t.Parallel()
	text := func() io.Reader { return strings.NewReader("x") }
	none := func() io.Reader { return nil }
	key := func(name string) http.Header { return http.Header{name: {"order-42"}} }
	cases := []struct {
		name     string
		method   string
		header   http.Header
		body     func() io.Reader
		wantHits int64
	}{
		{"POST without key", http.MethodPost, nil, text, 1},
		{"PATCH without key", http.MethodPatch, nil, none, 1},
		{"POST with Idempotency-Key", http.MethodPost, key("Idempotency-Key"), text, 2},
		{"POST with X-Idempotency-Key", http.MethodPost, key("X-Idempotency-Key"), none, 2},
		{"PUT", http.MethodPut, nil, text, 2},
		{"DELETE", http.MethodDelete, nil, none, 2},
		{"HEAD", http.MethodHead, nil, none, 2},
		{"OPTIONS", http.MethodOptions, nil, none, 2},
		{"PUT with unrewindable body", http.MethodPut, nil, func() io.Reader { return io.MultiReader(strings.NewReader("x")) }, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newCountingServer(t, failFirst(1, http.StatusServiceUnavailable, nil))
			c, _ := retryClient(t, RetryConfig{})
			req, err := http.NewRequest(tc.method, srv.URL, tc.body())
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.wantHits, srv.requests.Load(), "server hits")
		})
	}
}

func TestRetryRewindsBody(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	var calls atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if calls.Add(1) < 4 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	c, _ := retryClient(t, RetryConfig{MaxAttempts: 4})
	payload := bytes.Repeat([]byte("order-line;"), 1000)
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 4)
	for i, b := range bodies {
		assert.Equal(t, string(payload), b, "attempt %d body differs", i+1)
	}
}

// TestRetryDrainsDiscardedBodies runs a 503 storm (every request fails twice
// with a 16 KiB body before succeeding) at concurrency 10 and checks the
// connections are reused: discarded responses must be drained and closed.
func TestRetryDrainsDiscardedBodies(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("e", 16<<10)
	var attempts sync.Map // X-Request-Id → *atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := attempts.LoadOrStore(r.Header.Get("X-Request-Id"), new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, big)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	const workers, perWorker = 10, 30
	rec := &sleepRecorder{}
	probe := &bodyProbe{}
	// Two refusals per accept would throttle the storm (K 2): this test is
	// about the retry layer's bodies, so the throttle is off.
	c := newTestClient(t, Config{DisableBreaker: true, DisableMetrics: true, DisableThrottle: true, WrapBase: probe.wrap,
		Retry: RetryConfig{Clock: rec}})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
				if !assert.NoError(t, err) {
					return
				}
				req.Header.Set("X-Request-Id", strconv.Itoa(w*perWorker+i))
				resp, err := c.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(3*workers*perWorker), srv.requests.Load())
	// What the retry layer controls: every discarded body (600) is read to
	// EOF before it is closed, which is what puts its connection back in
	// the pool; the test reads the 300 successful ones to EOF itself.
	assert.Equal(t, int64(3*workers*perWorker), probe.bodies.Load())
	assert.Zero(t, probe.closedEarly.Load(), "discarded bodies closed without being drained")
	// Sanity: workers connections on an idle machine, a few more when
	// net/http's 50 ms write-confirmation rule trips under CPU starvation
	// (see TestConnectionReuse); undrained bodies would close each of the
	// 600 discarded responses' connections.
	t.Logf("connections: %d opened", srv.conns.Load())
	assert.LessOrEqual(t, srv.conns.Load(), int64(5*workers), "wanted no extra connections during the 503 storm")
}

// TestRetryClosesOversizedBodies checks a discarded body longer than
// DrainLimit is closed (its connection dropped) rather than read to the end.
func TestRetryClosesOversizedBodies(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Attempted") == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.Repeat("e", 256<<10))
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	probe := &bodyProbe{}
	c := newTestClient(t, Config{DisableBreaker: true, DisableMetrics: true, WrapBase: probe.wrap,
		Retry: RetryConfig{DrainLimit: 1024, MaxAttempts: 2, Clock: &sleepRecorder{}}})
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, int64(2), probe.bodies.Load())
	assert.Equal(t, int64(2), probe.closedEarly.Load(), "wanted the 256 KiB body closed after 1 KiB, not drained (and the test closed the last unread)")
	assert.GreaterOrEqual(t, srv.conns.Load(), int64(2), "wanted the oversized body's connection closed, not drained")
}

func TestRetryStopsOnContextCancel(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(100, http.StatusServiceUnavailable, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A real timer-based wait, cancelled while it runs.
	c, _ := retryClient(t, RetryConfig{
		BaseDelay: 20 * time.Second, MaxDelay: 20 * time.Second, Clock: resilience.SystemClock(),
		OnRetry: func(*http.Request, int, *http.Response, error, time.Duration) { cancel() },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err := c.Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 10*time.Second, "cancel should end the wait at once")
	assert.Equal(t, int64(1), srv.requests.Load())
}

func TestRetrySkipsWaitPastDeadline(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(100, http.StatusServiceUnavailable, nil))
	c, rec := retryClient(t, RetryConfig{BaseDelay: time.Hour, MaxDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "wanted the last response, not a wait past the deadline")
	assert.Empty(t, rec.Waits())
	assert.Equal(t, int64(1), srv.requests.Load())
}

func TestRetryOnConnectionError(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	url := srv.URL
	srv.Close() // nothing listens on the port any more
	c, rec := retryClient(t, RetryConfig{MaxAttempts: 3})
	resp, err := c.Get(url)
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Len(t, rec.Waits(), 2, "wanted both retries after connection refused")
}

func TestRetryNumbersAttempts(t *testing.T) {
	t.Parallel()
	var seen []int
	rt, err := NewRetry(roundTripFunc(func(req *http.Request) (*http.Response, error) {
		seen = append(seen, AttemptFromContext(req.Context()))
		return &http.Response{StatusCode: http.StatusBadGateway, Body: http.NoBody, Header: http.Header{}}, nil
	}), RetryConfig{MaxAttempts: 3, Clock: &sleepRecorder{}})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, []int{1, 2, 3}, seen)
}

func TestRetryNotOnBreakerOpen(t *testing.T) {
	t.Parallel()
	rec := &sleepRecorder{}
	rt, err := NewRetry(roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return nil, &BreakerOpenError{Host: req.URL.Host, Err: errors.New("open")}
	}), RetryConfig{Clock: rec})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	assert.ErrorIs(t, err, ErrBreakerOpen)
	assert.Empty(t, rec.Waits())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestBackoffCeilings: the schedule is resilience's exponential backoff
// (JitterNone waits the full ceiling), capped at MaxDelay.
func TestBackoffCeilings(t *testing.T) {
	t.Parallel()
	rec := &sleepRecorder{}
	rt, err := NewRetry(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusBadGateway, Body: http.NoBody, Header: http.Header{}}, nil
	}), RetryConfig{MaxAttempts: 8, BaseDelay: time.Second, MaxDelay: 10 * time.Second, Jitter: resilience.JitterNone, Clock: rec})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i := range want {
		want[i] *= time.Second
	}
	assert.Equal(t, want, rec.Waits())
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if ok && d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, want a non-negative wait", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
		}
	})
}
