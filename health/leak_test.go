package health

import (
	"context"
	"errors"
	"fmt"
	"github.com/servio/perfkit/internal/testenv"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quotingTransport fails every request with an error quoting its URL, as
// a transport or proxy may.
type quotingTransport struct{}

func (quotingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, errors.New("dial " + r.URL.String() + ": connection refused")
}

// TestNoSecretLeaves pushes every case of the leak table through every
// path of health that reports or logs: a check's error, output,
// measurement value and component ids; a panicking check; the HTTP check
// (bad URLs and transport errors quoting the URL); Check and Ready results,
// the JSON bodies, the status-change and panic log lines.
func TestNoSecretLeaves(t *testing.T) {
	t.Parallel()
	cases := redacttest.Cases(5)
	var logs testenv.SyncBuffer
	client := &http.Client{Transport: quotingTransport{}}
	var checks []Check
	for i, c := range cases {
		in := c.Input
		checks = append(checks,
			Check{Name: fmt.Sprintf("err%d", i), Critical: true, ComponentID: in, Run: fixed(Result{
				Err: errors.New(in), Output: in,
				Measurements: []Measurement{{Name: "v", Value: in, ComponentID: in}},
			})},
			Check{Name: fmt.Sprintf("warn%d", i), Run: fixed(Result{Status: StatusWarn, Output: in})},
			Check{Name: fmt.Sprintf("panic%d", i), Run: func(context.Context) Result { panic(in) }},
			Check{Name: fmt.Sprintf("http%d", i), Run: HTTP(client, in, 0)},
		)
	}
	c := newTest(t, Config{Checks: checks, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	var out strings.Builder
	fmt.Fprintf(&out, "%+v\n%+v\n", c.Check(ctx), c.Ready(ctx))
	h := c.Handler(HandlerConfig{Authorizer: AllowAll})
	for _, target := range []string{"/health/detailed", "/health/ready?verbose", "/health?verbose"} {
		out.WriteString(get(h, target).Body.String())
	}
	all := out.String() + logs.String()
	require.Contains(t, logs.String(), "health: check panicked", "the panic log line is part of what is checked")
	require.Contains(t, logs.String(), "health: check status changed")
	for _, tc := range cases {
		redacttest.NoLeak(t, tc, all)
	}
}

// TestIssue24HTTPCheckBadURL is the issue's case: url.Parse's error quotes
// the raw URL, and the password holds a '/'.
func TestIssue24HTTPCheckBadURL(t *testing.T) {
	t.Parallel()
	var logs testenv.SyncBuffer
	c := newTest(t, Config{
		Checks: []Check{{Name: "api", Critical: true, Run: HTTP(nil, "https://svc:Zm9v/YmFy+cXV4@api.internal/health", 0)}},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	rep := c.Check(context.Background())
	require.Len(t, rep.Checks, 1)
	assert.Contains(t, rep.Checks[0].Output, "health: bad URL")
	for _, text := range []string{rep.Checks[0].Output, logs.String()} {
		assert.NotContains(t, text, "Zm9v")
		assert.NotContains(t, text, "YmFy")
	}
}

// TestQueryOptionsNeedAuthorization: ?exclude and ?verbose are for callers
// the Authorizer admits; anyone else gets the status over every check.
func TestQueryOptionsNeedAuthorization(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{Checks: []Check{
		{Name: "db", Critical: true, Run: fixed(Result{Err: errors.New("down")})},
		{Name: "cache", Run: fixed(Result{})},
	}})
	h := c.Handler(HandlerConfig{Authorizer: BearerToken("t0ken")})
	tests := []struct {
		target, token string
		code          int
		details       bool
	}{
		{"/health/ready", "", http.StatusServiceUnavailable, false},
		{"/health/ready?exclude=db", "", http.StatusServiceUnavailable, false},
		{"/health?exclude=db", "", http.StatusServiceUnavailable, false},
		{"/health?exclude=db&verbose", "", http.StatusServiceUnavailable, false},
		{"/health/ready?verbose", "", http.StatusServiceUnavailable, false},
		{"/health/ready?exclude=%zz", "", http.StatusServiceUnavailable, false},
		{"/health/ready?exclude=db", "Bearer t0ken", http.StatusOK, false},
		{"/health?exclude=db&verbose", "Bearer t0ken", http.StatusOK, true},
		{"/health/ready?exclude=%zz", "Bearer t0ken", http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		w := get(h, tt.target, "Authorization", tt.token)
		assert.Equal(t, tt.code, w.Code, "%s with %q: %s", tt.target, tt.token, w.Body)
		assert.Equal(t, tt.details, strings.Contains(w.Body.String(), `"checks"`), "%s with %q: %s", tt.target, tt.token, w.Body)
	}
}

// TestCheckResultsAreRedacted: what Check hands back is redacted too, and
// Config.SecretNames adds names.
func TestCheckResultsAreRedacted(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{SecretNames: []string{"pin"}, Checks: []Check{{Name: "x", Run: fixed(Result{
		Status: StatusWarn, Output: "card_pin=4321",
		Measurements: []Measurement{{Name: "dsn", Value: "postgres://app:hunter2@db/x", ComponentID: "redis://:hunter2@n1:6379"}},
	})}}})
	rep := c.Check(context.Background())
	require.Len(t, rep.Checks, 1)
	got := fmt.Sprintf("%+v", rep)
	assert.NotContains(t, got, "hunter2")
	assert.NotContains(t, got, "4321")
	assert.Equal(t, "postgres://app:xxxxx@db/x", rep.Checks[0].Measurements[0].Value)
}
