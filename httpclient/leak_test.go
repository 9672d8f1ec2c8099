package httpclient

import (
	"errors"
	"github.com/servio/perfkit/internal/testenv"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeUpstream answers 503 to requests whose path ends in /503, fails
// requests to fail.invalid with the error text in its X-Err header
// (quoting the URL when that is empty), and answers 200 otherwise.
type fakeUpstream struct{}

func (fakeUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "fail.invalid" || strings.HasPrefix(r.URL.Host, "fail.") {
		msg := r.Header.Get("X-Err")
		if msg == "" {
			msg = "proxy: dial " + r.URL.String() + ": connection refused"
		}
		return nil, errors.New(msg)
	}
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: r}, nil
}

// TestNoSecretInLogs pushes every case of the leak table through the
// client's logging paths (request and retry lines, at Debug): as the
// request URL answered with 503, as a URL the transport's error quotes,
// as an error text, and as header values; no secret may appear.
func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &sleepRecorder{}
	c := newTestClient(t, Config{Base: fakeUpstream{}, Logger: logger, DisableBreaker: true, Retry: RetryConfig{Clock: rec}})
	cases := redacttest.Cases(10)
	sent := 0
	for _, tc := range cases {
		targets := []string{"https://fail.invalid/x"}
		if u, err := http.NewRequest(http.MethodGet, tc.Input, nil); err == nil && (u.URL.Scheme == "http" || u.URL.Scheme == "https") {
			fail := *u.URL
			fail.Host = "fail." + u.URL.Host
			targets = append(targets, tc.Input, fail.String())
		}
		for _, target := range targets {
			req, err := http.NewRequest(http.MethodGet, target, nil)
			require.NoError(t, err, target)
			if req.URL.Host == "fail.invalid" {
				req.Header.Set("X-Err", tc.Input)
			}
			req.Header.Set("Authorization", "Bearer "+tc.Secret)
			req.Header.Set("X-Api-Key", tc.Secret)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			sent++
		}
	}
	out := buf.String()
	require.GreaterOrEqual(t, strings.Count(out, "httpclient: request"), sent, "every request logged")
	require.Contains(t, out, "httpclient: retrying request")
	for _, tc := range cases {
		redacttest.NoLeak(t, tc, out)
	}
}

// TestIssue24WebhookPathNotLogged is the issue's case: a 5xx from a Slack
// webhook logged at WARN with the secret path.
func TestIssue24WebhookPathNotLogged(t *testing.T) {
	t.Parallel()
	var buf testenv.SyncBuffer
	c := newTestClient(t, Config{Base: fakeUpstream{}, DisableRetry: true, DisableBreaker: true,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	resp, err := c.Post("https://hooks.slack.com/services/T0000/B0000/XXXXSECRETXXXX", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, buf.String(), "url=https://hooks.slack.com attempt=1 status=503")
	assert.NotContains(t, buf.String(), "SECRET")

	buf.Reset()
	req, err := http.NewRequestWithContext(WithRoute(t.Context(), "/services/{team}/{bot}/{key}"), http.MethodPost,
		"https://hooks.slack.com/services/T0000/B0000/XXXXSECRETXXXX", strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, buf.String(), "url=https://hooks.slack.com/services/{team}/{bot}/{key} ")
	assert.NotContains(t, buf.String(), "SECRET")
}
