package httpclient

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// switchServer answers with the status stored in status.
func switchServer(t *testing.T, status *atomic.Int64) *countingServer {
	t.Helper()
	return newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	})
}

func get(t *testing.T, c *http.Client, u string) (int, error) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestBreakerOpensOn5xx trips the breaker with an open timeout far longer
// than the test, so "refused while open" does not depend on how fast the
// machine gets from the third failure to the fourth request.
func TestBreakerOpensOn5xx(t *testing.T) {
	t.Parallel()
	var status atomic.Int64
	status.Store(http.StatusInternalServerError)
	srv := switchServer(t, &status)
	c := newTestClient(t, Config{DisableRetry: true, Breaker: BreakerConfig{ConsecutiveFailures: 3, OpenTimeout: time.Hour}})

	for range 3 {
		code, err := get(t, c, srv.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusInternalServerError, code)
	}
	status.Store(http.StatusOK)
	for i := range 3 {
		_, err := get(t, c, srv.URL)
		require.ErrorIs(t, err, ErrBreakerOpen, "wanted request %d refused by the open breaker", 4+i)
		var be *BreakerOpenError
		require.ErrorAs(t, err, &be)
		assert.Equal(t, srv.Listener.Addr().String(), be.Host)
		assert.ErrorIs(t, err, gobreaker.ErrOpenState)
	}
	assert.Equal(t, int64(3), srv.requests.Load(), "an open breaker must not reach the server")
}

// TestBreakerRecovers opens the breaker with a short open timeout and waits
// (on a condition, not a fixed sleep) for it to half-open and close.
func TestBreakerRecovers(t *testing.T) {
	t.Parallel()
	var status atomic.Int64
	status.Store(http.StatusInternalServerError)
	srv := switchServer(t, &status)
	var mu sync.Mutex
	var changes []string
	c := newTestClient(t, Config{DisableRetry: true, Breaker: BreakerConfig{
		ConsecutiveFailures: 3,
		OpenTimeout:         50 * time.Millisecond,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			mu.Lock()
			changes = append(changes, from.String()+"→"+to.String())
			mu.Unlock()
		},
	}})

	for range 3 {
		code, err := get(t, c, srv.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusInternalServerError, code)
	}
	status.Store(http.StatusOK)
	require.Eventually(t, func() bool {
		code, err := get(t, c, srv.URL)
		return err == nil && code == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "wanted the breaker to half-open and close after the timeout")
	code, err := get(t, c, srv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"closed→open", "open→half-open", "half-open→closed"}, changes)
}

func TestBreakerIgnores4xxAndCancellation(t *testing.T) {
	t.Parallel()
	var status atomic.Int64
	status.Store(http.StatusNotFound)
	srv := switchServer(t, &status)
	b, err := NewBreaker(Transport(Config{}), BreakerConfig{ConsecutiveFailures: 2})
	require.NoError(t, err)
	c := &http.Client{Transport: b}
	t.Cleanup(c.CloseIdleConnections)
	for range 5 {
		code, err := get(t, c, srv.URL)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		_, err = c.Do(req)
		require.ErrorIs(t, err, context.Canceled)
	}
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	st, ok := b.State(u.Host)
	require.True(t, ok)
	assert.Equal(t, gobreaker.StateClosed, st, "4xx and caller cancellation must not trip the breaker")
}

func TestBreakerIsPerHost(t *testing.T) {
	t.Parallel()
	var bad, good atomic.Int64
	bad.Store(http.StatusServiceUnavailable)
	good.Store(http.StatusOK)
	badSrv, goodSrv := switchServer(t, &bad), switchServer(t, &good)
	c := newTestClient(t, Config{DisableRetry: true, Breaker: BreakerConfig{ConsecutiveFailures: 1}})
	_, err := get(t, c, badSrv.URL)
	require.NoError(t, err)
	_, err = get(t, c, badSrv.URL)
	require.ErrorIs(t, err, ErrBreakerOpen)
	code, err := get(t, c, goodSrv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "another host's breaker must stay closed")
}

func TestBreakerFailureRatio(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	// Every other request fails: never 2 in a row, but 50% overall.
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	c := newTestClient(t, Config{DisableRetry: true, Breaker: BreakerConfig{
		ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10,
	}})
	var err error
	for range 10 {
		if _, err = get(t, c, srv.URL); err != nil {
			break
		}
	}
	require.NoError(t, err, "the breaker must wait for MinRequests")
	_, err = get(t, c, srv.URL)
	assert.ErrorIs(t, err, ErrBreakerOpen)
}

func TestBreakerBoundsHosts(t *testing.T) {
	t.Parallel()
	b, err := NewBreaker(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	}), BreakerConfig{MaxHosts: 3})
	require.NoError(t, err)
	for _, h := range []string{"a:1", "b:1", "c:1", "d:1", "e:1"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+h+"/", nil)
		require.NoError(t, err)
		_, err = b.RoundTrip(req)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, b.Len())
	_, ok := b.State("e:1")
	assert.True(t, ok)
}
