package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/require"
)

// dialects are the databases every route test runs on.
var dialects = []string{"sqlite", "postgres"}

// testAppOptions keep tests fast and steady: cheap password hashes, an LLM
// policy whose retries wait milliseconds, not seconds, and Redis deadlines
// a loaded CI machine cannot miss (past the 50 ms default a slow Redis
// reply would turn a login into the Auth tier's fail-closed 503, or lose
// an invalidation). Outage tests kill Redis, which fails fast anyway.
// Health checks run on request, so a test sees a check fail as soon as it
// breaks the dependency (TestHealthMetricsOnFirstScrape runs them in the
// background, as the binary does).
var testAppOptions = appOptions{passwordIterations: 1000, redisTimeout: 5 * time.Second, healthInterval: -1,
	llmPolicy: func(p *resilience.PipelineConfig) {
		p.Retry.BaseDelay, p.Retry.MaxDelay = time.Millisecond, 5*time.Millisecond
	}}

// testApp is a servio App behind an httptest server, with a count of the
// SQL statements its pool ran.
type testApp struct {
	*App
	t       testing.TB
	URL     string
	queries *atomic.Int64
	// token, when set, is sent as the bearer token of every request.
	token string
}

// as returns a view of the app whose requests carry tok.
func (a *testApp) as(tok string) *testApp {
	c := *a
	c.token = tok
	return &c
}

// tokenFor signs a token for a demo user as POST /auth/login would, without
// a request (so no rate-limit tier counts it).
func (a *testApp) tokenFor(email string) string {
	a.t.Helper()
	u, err := a.st.UserByEmail(context.Background(), email)
	require.NoError(a.t, err, "demo user %s", email)
	tok, _, err := a.tokens.issue(u)
	require.NoError(a.t, err)
	return tok
}

// admin returns a view of the app signed in as an admin, who may use
// every route of every restaurant (the token is signed directly, so it
// works without demo data too).
func (a *testApp) admin() *testApp {
	a.t.Helper()
	tok, _, err := a.tokens.issue(store.User{ID: 1 << 40, Email: "test-admin@servio.dev", Role: store.RoleAdmin})
	require.NoError(a.t, err)
	return a.as(tok)
}

// testConfig is the configuration of a test instance: embedded defaults,
// data in a temp dir, a fast simulated LLM, PostgreSQL in its own schema
// when dialect is "postgres".
func testConfig(t testing.TB, dialect string) Config {
	t.Helper()
	cfg, err := parseConfig("servio-test", nil, func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	cfg.DataDir = t.TempDir()
	cfg.SimLLMLatency = 0
	cfg.AuthSecret = "test-secret"
	// The run-queue delay is the process's: with many test servers in one
	// process on a busy machine it would shed one test's requests for the
	// others' load. Overload tests set it back.
	cfg.AdaptiveDelayTarget = 0
	if dialect == "postgres" {
		cfg.DatabaseURL = testenv.PostgresDSN(t)
	}
	return cfg
}

func startApp(t testing.TB, cfg Config) *testApp {
	t.Helper()
	return startAppWith(t, cfg, testAppOptions)
}

// startAppWith is startApp with other appOptions.
func startAppWith(t testing.TB, cfg Config, opts appOptions) *testApp {
	t.Helper()
	var n atomic.Int64
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := newApp(ctx, cfg, log, opts)
	require.NoError(t, err)
	// Count every statement each request runs, with dbpool's counter.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, qc := dbpool.CountQueries(r.Context())
		app.Handler().ServeHTTP(w, r.WithContext(ctx))
		n.Add(qc.Load())
	}))
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, app.Close())
	})
	return &testApp{App: app, t: t, URL: srv.URL, queries: &n}
}

func newTestApp(t testing.TB, dialect string) *testApp {
	t.Helper()
	return startApp(t, testConfig(t, dialect))
}

// do sends a request with an optional JSON body and returns the status and
// the body.
func (a *testApp) do(method, path, body string) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, r)
	require.NoError(a.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, b
}

// doJSON is do that also decodes the body into out and requires want.
func (a *testApp) doJSON(method, path, body string, want int, out any) {
	a.t.Helper()
	code, b := a.do(method, path, body)
	require.Equal(a.t, want, code, "%s %s: body %s", method, path, b)
	if out != nil {
		require.NoError(a.t, json.Unmarshal(b, out), "%s %s: body %s", method, path, b)
	}
}

// jsonUnmarshal decodes s into v.
func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// statusOf sends req with the default client and returns the answer's
// status once its body is drained, or 0 if the request failed. It calls
// no require, so it is safe off the test's goroutine.
func statusOf(req *http.Request) int {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
