package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toggle is a check whose outcome the test switches.
type toggle struct{ failing atomic.Bool }

func (tg *toggle) run(context.Context) Result {
	if tg.failing.Load() {
		return Result{Err: errors.New("connection refused")}
	}
	return Result{}
}

func TestReadinessGating(t *testing.T) {
	t.Parallel()
	clk := newClock()
	db, warm := &toggle{}, &toggle{}
	db.failing.Store(true)
	warm.failing.Store(true)
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{
		{Name: "db", Critical: true, Run: db.run},
		{Name: "warmup", Startup: true, Run: warm.run},
	}})
	h := c.Handler(HandlerConfig{Authorizer: AllowAll})
	ready := func() (int, string) {
		clk.Add(time.Hour) // expire the cache
		w := get(h, "/health/ready")
		var body struct{ Status, Output string }
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
		return w.Code, body.Output
	}

	code, out := ready()
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready before startup checks pass")
	assert.Equal(t, "starting: waiting for db", out)

	db.failing.Store(false)
	code, out = ready()
	assert.Equal(t, http.StatusServiceUnavailable, code, "a non-critical startup check gates too")
	assert.Equal(t, "starting: waiting for warmup", out)
	assert.Equal(t, http.StatusOK, get(h, "/health/ready?exclude=warmup").Code, "exclude lifts the gate")

	warm.failing.Store(false)
	code, _ = ready()
	assert.Equal(t, http.StatusOK, code, "ready once startup checks passed")

	warm.failing.Store(true)
	code, _ = ready()
	assert.Equal(t, http.StatusOK, code, "a failing non-critical check after startup only warns")
	assert.Equal(t, StatusWarn, c.Ready(context.Background()).Status)

	db.failing.Store(true)
	code, _ = ready()
	assert.Equal(t, http.StatusServiceUnavailable, code, "a failing critical check makes it unready")

	db.failing.Store(false)
	warm.failing.Store(false)
	code, _ = ready()
	assert.Equal(t, http.StatusOK, code)

	c.SetDraining(true)
	assert.True(t, c.Draining())
	w := get(h, "/health/ready")
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "draining flips ready at once, cache or not")
	assert.Contains(t, w.Body.String(), `"output":"draining"`)
	assert.Equal(t, http.StatusOK, get(h, "/health/live").Code, "draining does not touch liveness")
	assert.Equal(t, http.StatusOK, get(h, "/health").Code, "nor the health status")
	c.SetDraining(false)
	assert.Equal(t, http.StatusOK, get(h, "/health/ready").Code)
}

func TestLiveNeverRunsChecks(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	c := newTest(t, Config{Checks: []Check{{Name: "db", Critical: true, Run: func(context.Context) Result {
		runs.Add(1)
		return Result{Err: errors.New("down")}
	}}}})
	w := get(c.Handler(HandlerConfig{}), "/health/live")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"status":"pass"}`, w.Body.String())
	assert.Zero(t, runs.Load(), "liveness must not touch dependencies")
}

func TestDetailHiding(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{Version: "1.2.3", Checks: []Check{
		{Name: "db", Critical: true, ComponentID: "postgres://app:hunter2@db.internal", Run: fixed(Result{
			Err:          errors.New(`dial postgres://app:hunter2@db.internal:5432/servio?sslmode=disable password=hunter2: refused`),
			Measurements: []Measurement{{Name: "responseTime", Value: 1.5, Unit: "ms"}, {Name: "dsn", Value: "postgres://app:hunter2@db.internal/servio"}},
		})},
	}})
	h := c.Handler(HandlerConfig{Authorizer: BearerToken("s3cret")})
	paths := []string{"/health", "/health?verbose", "/health/detailed", "/health/ready?verbose"}
	for _, p := range paths {
		w := get(h, p)
		assert.Equal(t, `{"status":"fail"}`+"\n", w.Body.String(), "%s without a token: status only", p)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, p)
		w = get(h, p, "Authorization", "Bearer wrong")
		assert.Equal(t, `{"status":"fail"}`+"\n", w.Body.String(), "%s with a wrong token: status only", p)
	}
	w := get(h, "/health/detailed", "Authorization", "Bearer s3cret")
	body := w.Body.String()
	assert.Contains(t, body, `"db:responseTime"`)
	assert.Contains(t, body, `"version":"1.2.3"`)
	assert.Contains(t, body, "app:xxxxx@db.internal")
	assert.NotContains(t, body, "hunter2", "no secret may reach the output")
}

func TestJSONShape(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c := newTest(t, Config{
		Now: clk.Now, Version: "1", ReleaseID: "1.2.3", ServiceID: "servio", Description: "orders",
		Checks: []Check{
			{Name: "db", Critical: true, ComponentID: "pg-1", Run: fixed(Result{
				ComponentType: "datastore",
				Measurements: []Measurement{
					{Name: "responseTime", Value: 2.5, Unit: "ms"},
					{Name: "openConnections", Value: 3},
				},
			})},
			{Name: "llm", Run: fixed(Result{Err: errors.New("status 502")})},
		},
	})
	w := get(c.Handler(HandlerConfig{Authorizer: AllowAll}), "/health/detailed")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/health+json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.JSONEq(t, `{
		"status": "warn",
		"version": "1",
		"releaseId": "1.2.3",
		"serviceId": "servio",
		"description": "orders",
		"checks": {
			"db:responseTime": [{"componentId": "pg-1", "componentType": "datastore", "observedValue": 2.5, "observedUnit": "ms", "status": "pass", "time": "2026-11-26T09:00:00Z"}],
			"db:openConnections": [{"componentId": "pg-1", "componentType": "datastore", "observedValue": 3, "status": "pass", "time": "2026-11-26T09:00:00Z"}],
			"llm": [{"componentType": "component", "status": "fail", "time": "2026-11-26T09:00:00Z", "output": "status 502"}]
		}
	}`, w.Body.String())

	var doc map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc))
	w = get(c.Handler(HandlerConfig{Authorizer: AllowAll}), "/health")
	assert.NotContains(t, w.Body.String(), "checks", "/health without ?verbose has no checks")
	w = get(c.Handler(HandlerConfig{Authorizer: AllowAll}), "/health?verbose&exclude=llm")
	assert.JSONEq(t, `{
		"status": "pass", "version": "1", "releaseId": "1.2.3", "serviceId": "servio", "description": "orders",
		"checks": {
			"db:responseTime": [{"componentId": "pg-1", "componentType": "datastore", "observedValue": 2.5, "observedUnit": "ms", "status": "pass", "time": "2026-11-26T09:00:00Z"}],
			"db:openConnections": [{"componentId": "pg-1", "componentType": "datastore", "observedValue": 3, "status": "pass", "time": "2026-11-26T09:00:00Z"}]
		}
	}`, w.Body.String())
}

func TestHandlerRouting(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{Checks: []Check{{Name: "db", Critical: true, Run: fixed(Result{})}}})
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })
	mux := http.NewServeMux()
	c.Mount(mux, HandlerConfig{PathPrefix: "/hc/", Metrics: metrics})
	tests := []struct {
		method, target string
		code           int
		body           string
	}{
		{http.MethodGet, "/hc", http.StatusOK, `{"status":"pass"}` + "\n"},
		{http.MethodGet, "/hc/", http.StatusOK, `{"status":"pass"}` + "\n"},
		{http.MethodGet, "/hc/ready", http.StatusOK, `{"status":"pass"}` + "\n"},
		{http.MethodGet, "/hc/detailed", http.StatusOK, `{"status":"pass"}` + "\n"},
		{http.MethodGet, "/hc/live", http.StatusOK, `{"status":"pass"}` + "\n"},
		{http.MethodGet, "/hc/metrics", http.StatusOK, "# metrics\n"},
		{http.MethodHead, "/hc/ready", http.StatusOK, ""},
		{http.MethodGet, "/hc/nope", http.StatusNotFound, "404 page not found\n"},
		{http.MethodPost, "/hc/ready", http.StatusMethodNotAllowed, "method not allowed\n"},
		{http.MethodGet, "/hc?exclude=%zz", http.StatusOK, `{"status":"pass"}` + "\n"}, // the query of an unauthorized caller is ignored
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequestWithContext(context.Background(), tt.method, tt.target, nil))
		assert.Equal(t, tt.code, w.Code, "%s %s", tt.method, tt.target)
		assert.Equal(t, tt.body, w.Body.String(), "%s %s", tt.method, tt.target)
	}
	// Each endpoint is a pattern of its own, so HTTP metrics (http.route,
	// taken from the matched pattern) tell them apart.
	for _, path := range []string{"/hc", "/hc/live", "/hc/ready", "/hc/detailed", "/hc/metrics"} {
		r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
		mux.ServeHTTP(httptest.NewRecorder(), r)
		assert.Equal(t, path, r.Pattern, "the pattern that served %s", path)
	}
	noMetrics := http.NewServeMux()
	c.Mount(noMetrics, HandlerConfig{})
	r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/health/metrics", nil)
	noMetrics.ServeHTTP(httptest.NewRecorder(), r)
	assert.Equal(t, "/health/", r.Pattern, "no metrics handler: the catch-all serves the 404")
	assert.Equal(t, http.StatusNotFound, get(c.Handler(HandlerConfig{}), "/health/metrics").Code, "no metrics handler, no route")
	assert.Equal(t, http.StatusNotFound, get(c.Handler(HandlerConfig{}), "/other").Code)

	root := http.NewServeMux()
	c.Mount(root, HandlerConfig{PathPrefix: "/"})
	assert.Equal(t, http.StatusOK, get(root, "/ready").Code, "PathPrefix / mounts at the root")
	assert.Equal(t, http.StatusOK, get(root, "/").Code)
}

func TestAuthorizers(t *testing.T) {
	t.Parallel()
	req := func(remote, auth string) *http.Request {
		r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/health", nil)
		r.RemoteAddr = remote
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	tests := []struct {
		name string
		auth func(*http.Request) bool
		r    *http.Request
		want bool
	}{
		{"bearer ok", BearerToken("tok"), req("1.2.3.4:5", "Bearer tok"), true},
		{"bearer wrong", BearerToken("tok"), req("1.2.3.4:5", "Bearer tok2"), false},
		{"bearer missing", BearerToken("tok"), req("1.2.3.4:5", ""), false},
		{"basic is not bearer", BearerToken("tok"), req("1.2.3.4:5", "Basic tok"), false},
		{"empty token accepts nobody", BearerToken(""), req("1.2.3.4:5", "Bearer "), false},
		{"loopback", PrivateNetwork, req("127.0.0.1:9", ""), true},
		{"private v4", PrivateNetwork, req("10.1.2.3:9", ""), true},
		{"private v6", PrivateNetwork, req("[fd00::1]:9", ""), true},
		{"public", PrivateNetwork, req("8.8.8.8:9", ""), false},
		{"garbage addr", PrivateNetwork, req("nonsense", ""), false},
		{"allow all", AllowAll, req("8.8.8.8:9", ""), true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.auth(tt.r), tt.name)
	}
}
