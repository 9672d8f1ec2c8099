package httpclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
)

// getter is the zero-glue call the issue asks for: a GET through a
// resilience pipeline whose only HTTP-specific line is CheckStatus.
func getter(c *http.Client, p *resilience.Pipeline) func(context.Context, string) ([]byte, error) {
	return resilience.Wrap1(p, func(ctx context.Context, u string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := CheckStatus(c.Do(req))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	})
}

// statusClient is a client whose own retry layer is off: the pipeline
// retries.
func statusClient(t *testing.T) *http.Client {
	return newTestClient(t, Config{DisableRetry: true, DisableMetrics: true})
}

func TestCheckStatus503RetryAfterInPipeline(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"2"}}))
	rec := &sleepRecorder{}
	p, err := resilience.NewPipeline(resilience.PipelineConfig{
		Retry: &resilience.RetryConfig{MaxAttempts: 3}, Clock: rec, MeterProvider: noop.NewMeterProvider(),
	})
	require.NoError(t, err)
	body, err := getter(statusClient(t), p)(context.Background(), srv.URL+"/menu")
	require.NoError(t, err)
	assert.Equal(t, "ok", string(body))
	assert.Equal(t, []time.Duration{2 * time.Second}, rec.Waits(), "the retrier waited the server's Retry-After, not its backoff")
	assert.Equal(t, int64(2), srv.requests.Load())
}

func TestCheckStatus429RetryAfterInPipeline(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(2, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}))
	rec := &sleepRecorder{}
	p, err := resilience.NewPipeline(resilience.PipelineConfig{
		Retry:   &resilience.RetryConfig{MaxAttempts: 3},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 5},
		Clock:   rec, MeterProvider: noop.NewMeterProvider(),
	})
	require.NoError(t, err)
	body, err := getter(statusClient(t), p)(context.Background(), srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(body))
	assert.Equal(t, []time.Duration{time.Second, time.Second}, rec.Waits())
	assert.Equal(t, int64(3), srv.requests.Load())
}

func TestCheckStatusRetryAfterTooLong(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, failFirst(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}))
	rec := &sleepRecorder{}
	p, err := resilience.NewPipeline(resilience.PipelineConfig{
		Retry: &resilience.RetryConfig{MaxAttempts: 3, MaxRetryAfter: time.Minute}, Clock: rec, MeterProvider: noop.NewMeterProvider(),
	})
	require.NoError(t, err)
	_, err = getter(statusClient(t), p)(context.Background(), srv.URL)
	assert.ErrorIs(t, err, resilience.ErrRetryAfterTooLong)
	var re *resilience.RetryError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, time.Hour, re.ServerDelay)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.StatusCode)
	assert.Empty(t, rec.Waits(), "never resend before the server allows")
	assert.Equal(t, int64(1), srv.requests.Load())
}

func TestCheckStatus404NotRetriedNorCounted(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such order", http.StatusNotFound)
	})
	rec := &sleepRecorder{}
	p, err := resilience.NewPipeline(resilience.PipelineConfig{
		Retry:   &resilience.RetryConfig{MaxAttempts: 3},
		Breaker: &resilience.BreakerConfig{ConsecutiveFailures: 5},
		Clock:   rec, MeterProvider: noop.NewMeterProvider(),
	})
	require.NoError(t, err)
	get := getter(statusClient(t), p)
	for range 20 {
		_, err := get(context.Background(), srv.URL+"/orders/7")
		var se *StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusNotFound, se.StatusCode)
		assert.Equal(t, "no such order", se.Body)
		assert.True(t, resilience.IsNotFailure(err))
		assert.NotErrorIs(t, err, resilience.ErrOpen)
	}
	assert.Equal(t, int64(20), srv.requests.Load(), "one request per call: a 404 is not retried")
	assert.Empty(t, rec.Waits())
	assert.Equal(t, resilience.StateClosed, p.Breaker().State(), "20 404s do not trip the breaker")
	assert.Equal(t, uint32(0), p.Breaker().Counts().TotalFailures)

	// The same pipeline does count a 500: five trip it.
	bad := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	for range 2 {
		_, err = get(context.Background(), bad.URL)
	}
	assert.Equal(t, resilience.StateOpen, p.Breaker().State(), "5xx are failures: 2 calls × 3 attempts ≥ 5")
	assert.ErrorIs(t, err, resilience.ErrOpen)
}

func TestCheckStatusClassification(t *testing.T) {
	t.Parallel()
	for code := 400; code < 600; code++ {
		if http.StatusText(code) == "" {
			continue
		}
		resp := &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("x")),
			Request: &http.Request{Method: http.MethodPost, URL: &url.URL{Scheme: "https", Host: "api.example.com", Path: "/v1/x"}}}
		got, err := CheckStatus(resp, nil)
		assert.Nil(t, got)
		var se *StatusError
		require.ErrorAs(t, err, &se, "%d", code)
		assert.Equal(t, code, se.StatusCode)
		failure := code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
		assert.Equal(t, !failure, resilience.IsNotFailure(err), "%d: IsNotFailure", code)
		assert.Equal(t, failure, resilience.DefaultRetryable(err), "%d: DefaultRetryable", code)
		assert.Equal(t, failure, resilience.DefaultIsFailure(err), "%d: DefaultIsFailure", code)
		assert.Equal(t, "httpclient: POST https://api.example.com: "+strconv.Itoa(code)+" "+http.StatusText(code)+": x", err.Error())
	}
}

func TestCheckStatusPassesThrough(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 204, 301, 304, 399} {
		body := &closeTracker{Reader: strings.NewReader("keep")}
		resp := &http.Response{StatusCode: code, Body: body}
		got, err := CheckStatus(resp, nil)
		require.NoError(t, err)
		assert.Same(t, resp, got, "%d", code)
		assert.False(t, body.closed, "%d: body left for the caller", code)
	}
	boom := errors.New("dial: connection refused")
	got, err := CheckStatus(nil, boom)
	assert.Nil(t, got)
	assert.Same(t, boom, err, "a transport error is returned unchanged")
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestCheckStatusRetryAfterDate(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", at)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := CheckStatus(statusClient(t).Get(srv.URL))
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.InDelta(t, 30*time.Second, se.RetryAfter(), float64(3*time.Second), "an HTTP-date is read against now")

	noHeader := &StatusError{StatusCode: 500}
	assert.Zero(t, noHeader.RetryAfter())
}

func TestCheckStatusBodyCappedAndConnectionReused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 20<<10) // 40 KiB: past the snippet, under the drain limit
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, long)
	})
	c := statusClient(t)
	for range 5 {
		_, err := CheckStatus(c.Get(srv.URL))
		var se *StatusError
		require.ErrorAs(t, err, &se)
		assert.LessOrEqual(t, len(se.Body), StatusBodyLimit)
		assert.Greater(t, len(se.Body), StatusBodyLimit-4)
		assert.True(t, utf8.ValidString(se.Body), "the cut does not split a rune")
	}
	assert.Equal(t, int64(1), srv.conns.Load(), "the body was drained and the connection reused")
}

// TestCheckStatusNoSecretInError pushes every case of the leak table
// through a failing response: in the body the server returns, and in the
// request URL the server echoes; neither the error text nor its fields may
// hold the secret.
func TestCheckStatusNoSecretInError(t *testing.T) {
	t.Parallel()
	var echo atomic.Value
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"rejected `+echo.Load().(string)+` for `+r.URL.RequestURI()+` with `+r.Header.Get("Authorization")+`"}`)
	})
	c := statusClient(t)
	for _, tc := range redacttest.Cases(10) {
		echo.Store(tc.Input)
		for _, target := range []string{
			srv.URL + "/v1/chat",
			srv.URL + "/v1/chat?api-key=" + url.QueryEscape(tc.Secret),
			srv.URL + "/hooks/" + url.PathEscape(tc.Secret),
		} {
			req, err := http.NewRequest(http.MethodGet, target, nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+tc.Secret)
			_, err = CheckStatus(c.Do(req))
			var se *StatusError
			require.ErrorAs(t, err, &se)
			out := err.Error() + "\n" + se.URL + "\n" + se.Body
			redacttest.NoLeak(t, tc, out)
			redacttest.NoLeak(t, redacttest.Case{Name: tc.Name + " escaped", Input: tc.Input, Secret: url.QueryEscape(tc.Secret)}, out)
		}
	}
}
