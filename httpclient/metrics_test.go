package httpclient

import (
	"context"
	"github.com/servio/perfkit/internal/testenv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/servio/perfkit/internal/redact"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func collect(t *testing.T, r sdkmetric.Reader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func attrsOf(set attribute.Set) map[string]string {
	out := map[string]string{}
	for _, kv := range set.ToSlice() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func TestMetricsPerAttemptWithRouteTemplate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := &sleepRecorder{}
	c := newTestClient(t, Config{MeterProvider: mp, Retry: RetryConfig{Clock: rec}})

	ctx := WithRoute(context.Background(), "/v1/orders/{id}")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/orders/12345?token=abc", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	got := collect(t, reader)
	hist, ok := got["http.client.request.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok, "wanted a float64 histogram, got %T", got["http.client.request.duration"].Data)
	assert.Equal(t, "s", got["http.client.request.duration"].Unit)
	require.Len(t, hist.DataPoints, 2, "wanted one series for the 503 attempt and one for the 200")
	host, port, _ := strings.Cut(srv.Listener.Addr().String(), ":")
	statuses := map[string]bool{}
	for _, dp := range hist.DataPoints {
		a := attrsOf(dp.Attributes)
		statuses[a["http.response.status_code"]] = true
		assert.Equal(t, "GET", a["http.request.method"])
		assert.Equal(t, host, a["server.address"])
		assert.Equal(t, port, a["server.port"])
		assert.Equal(t, "/v1/orders/{id}", a["http.route"])
		assert.Equal(t, uint64(1), dp.Count)
		assert.Equal(t, durationBuckets(), dp.Bounds)
		for k, v := range a {
			assert.NotContains(t, v, "12345", "attribute %s leaks the raw path", k)
		}
	}
	assert.Equal(t, map[string]bool{"503": true, "200": true}, statuses)

	retries, ok := got["perfkit.httpclient.retries"].Data.(metricdata.Sum[int64])
	require.True(t, ok)
	assert.Equal(t, "{retry}", got["perfkit.httpclient.retries"].Unit)
	assert.Equal(t, "s", got["http.client.request.duration"].Unit)
	require.Len(t, retries.DataPoints, 1)
	assert.Equal(t, int64(1), retries.DataPoints[0].Value)
	assert.Equal(t, "503", attrsOf(retries.DataPoints[0].Attributes)["http.response.status_code"])
}

func TestMetricsRecordErrorsAndBreakerState(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := newTestClient(t, Config{MeterProvider: mp, DisableRetry: true, Breaker: BreakerConfig{ConsecutiveFailures: 1}})
	_, err := get(t, c, srv.URL+"/x")
	require.NoError(t, err)
	_, err = get(t, c, srv.URL+"/x")
	require.ErrorIs(t, err, ErrBreakerOpen)

	got := collect(t, reader)
	hist := got["http.client.request.duration"].Data.(metricdata.Histogram[float64])
	errTypes := map[string]bool{}
	for _, dp := range hist.DataPoints {
		a := attrsOf(dp.Attributes)
		errTypes[a["error.type"]] = true
		_, hasRoute := a["http.route"]
		assert.False(t, hasRoute, "no route was set, so none should be recorded")
	}
	assert.Equal(t, map[string]bool{"500": true, "circuit_open": true}, errTypes)

	// The per-host breakers are resilience's: perfkit.resilience.breaker.* labelled
	// resilience.policy = "httpclient/" + host.
	host := strings.TrimPrefix(srv.URL, "http://")
	state := got["perfkit.resilience.breaker.state"].Data.(metricdata.Gauge[int64])
	require.Len(t, state.DataPoints, 1)
	assert.Equal(t, "httpclient/"+host, attrsOf(state.DataPoints[0].Attributes)["resilience.policy"])
	assert.Equal(t, int64(2), state.DataPoints[0].Value, "wanted state 2 (open)")
	transitions := got["perfkit.resilience.breaker.transitions"].Data.(metricdata.Sum[int64])
	require.Len(t, transitions.DataPoints, 1)
	assert.Equal(t, "open", attrsOf(transitions.DataPoints[0].Attributes)["to"])
}

// TestBreakerGaugeRemovedWithHost reproduces issue 17: a host's breaker
// state kept reporting after the host was evicted from the registry.
func TestBreakerGaugeRemovedWithHost(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	b, err := NewBreaker(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
	}), BreakerConfig{MaxHosts: 1, MeterProvider: mp})
	require.NoError(t, err)
	series := func() []string {
		var hosts []string
		if g, ok := collect(t, reader)["perfkit.resilience.breaker.state"].Data.(metricdata.Gauge[int64]); ok {
			for _, dp := range g.DataPoints {
				hosts = append(hosts, attrsOf(dp.Attributes)["resilience.policy"])
			}
		}
		return hosts
	}
	for _, h := range []string{"a.invalid", "b.invalid"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+h+"/", nil)
		require.NoError(t, err)
		resp, err := b.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	assert.Equal(t, []string{"httpclient/b.invalid"}, series(), "an evicted host must stop reporting")
}

func TestMetricsRouteFunc(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(http.ResponseWriter, *http.Request) {})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := newTestClient(t, Config{MeterProvider: mp, Metrics: MetricsConfig{
		Route: func(r *http.Request) string { return strings.SplitN(r.URL.Path, "/", 3)[1] + "/*" },
	}})
	_, err := get(t, c, srv.URL+"/users/42")
	require.NoError(t, err)
	hist := collect(t, reader)["http.client.request.duration"].Data.(metricdata.Histogram[float64])
	require.Len(t, hist.DataPoints, 1)
	assert.Equal(t, "users/*", attrsOf(hist.DataPoints[0].Attributes)["http.route"])
}

func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Set-Cookie", "session=cookie-secret")
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	var buf testenv.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &sleepRecorder{}
	c := newTestClient(t, Config{Logger: logger, Retry: RetryConfig{Clock: rec}})

	u, err := url.Parse(srv.URL + "/v1/charge?api_key=query-secret&amount=10")
	require.NoError(t, err)
	u.User = url.UserPassword("user-secret", "password-secret")
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer header-secret")
	req.Header.Set("Cookie", "session=cookie-secret")
	req.Header.Set("Proxy-Authorization", "Basic proxy-secret")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	// A transport error path too: nothing listens here any more.
	dead := newCountingServer(t, func(http.ResponseWriter, *http.Request) {})
	dead.Close()
	_, err = c.Get(dead.URL + "/x?password=query-secret")
	require.Error(t, err)

	out := buf.String()
	assert.NotContains(t, out, "secret", "log output leaks a secret:\n%s", out)
	assert.NotContains(t, out, "/v1/charge", "the raw path is never logged")
	assert.Contains(t, out, `"url":"`+srv.URL+`"`, "without a route the url is scheme://host")
	assert.Contains(t, out, "httpclient: request")
	assert.Contains(t, out, "httpclient: retrying request")
}

func TestLogLevels(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	var buf testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := newTestClient(t, Config{Logger: logger, DisableRetry: true, DisableBreaker: true})
	_, err := get(t, c, srv.URL+"/ok")
	require.NoError(t, err)
	assert.Empty(t, buf.String(), "successful requests log at Debug by default")
	_, err = get(t, c, srv.URL+"/fail")
	require.NoError(t, err)
	assert.Contains(t, buf.String(), "level=WARN", "5xx responses log at Warn by default")
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"https://api.example.com/v1/x":                            "https://api.example.com",
		"https://u:p@api.example.com:8443/v1/x?key=s&b=2#frag":    "https://api.example.com:8443",
		"https://hooks.slack.com/services/T0000/B0000/XXXXSECRET": "https://hooks.slack.com",
		"http://h/p?bad%zzkey=1":                                  "http://h",
	}
	for in, want := range cases {
		u, err := url.Parse(in)
		require.NoError(t, err)
		assert.Equal(t, want, RedactURL(u), "RedactURL(%q)", in)
	}
}

// FuzzRedactURL: whatever the URL, its path, query, fragment and user info
// never reach the rendering, nor an error text quoting the URL.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/a/b?k=v#f", "http://h/p?flag&a=1", "https://hooks.slack.com/services/T/B/SECRET", "http://h/%zz", "https://svc:a%2Fb@h:1/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		out := RedactURL(u)
		errText := redactError(&url.Error{Op: "Get", URL: u.String(), Err: io.EOF}, u)
		pw, _ := u.User.Password()
		for _, secret := range []string{u.EscapedPath(), u.RawQuery, u.Fragment, pw, u.User.Username()} {
			if len(secret) < 4 || strings.Contains(u.Scheme+"://"+u.Host, secret) || strings.Contains(redact.Mask, secret) {
				continue
			}
			if strings.Contains(out, secret) || strings.Contains(errText, secret) {
				t.Fatalf("%q survived in %q / %q", secret, out, errText)
			}
		}
	})
}

func TestRedactErrorRemovesQueryAndUser(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("http://user:pw-secret@h/p?token=tok-secret")
	require.NoError(t, err)
	got := redactError(&url.Error{Op: "Get", URL: u.String(), Err: io.ErrUnexpectedEOF}, u)
	assert.NotContains(t, got, "secret")
}
