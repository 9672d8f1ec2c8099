package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOTLPEndpointBaseOrFull: -otlp-endpoint takes the collector's base URL
// or the full /v1/metrics one, and both post to /v1/metrics.
func TestOTLPEndpointBaseOrFull(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(col.Close)
	for _, ep := range []string{col.URL, col.URL + "/v1/metrics"} {
		cfg := testConfig(t, "sqlite")
		cfg.OTLPEndpoint = ep
		app := startApp(t, cfg)
		app.do(http.MethodGet, "/health/live", "")
		mu.Lock()
		paths = nil
		mu.Unlock()
		require.NoError(t, app.metrics.ForceFlush(context.Background()))
		mu.Lock()
		assert.Equal(t, []string{"/v1/metrics"}, paths, "-otlp-endpoint %s", ep)
		mu.Unlock()
	}
}

// scrapeAfterWorkload starts an app, sends a small workload (health, menu,
// a login that fails, an assistant question) and returns /health/metrics.
func scrapeAfterWorkload(t *testing.T) string {
	t.Helper()
	app := newTestApp(t, "sqlite")
	for _, p := range []string{"/health/live", "/health/ready", "/health/detailed"} {
		app.do(http.MethodGet, p, "")
	}
	app.do(http.MethodGet, "/restaurants/1/menu", "")
	app.do(http.MethodPost, "/auth/login", `{"email":"nobody@servio.dev","password":"wrong"}`)
	app.do(http.MethodGet, "/orders/1", "")
	code, body := app.do(http.MethodGet, "/health/metrics", "")
	require.Equal(t, http.StatusOK, code)
	return string(body)
}

// promtool returns the path of Prometheus's promtool, failing the test
// with how to install it when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install the Debian package `prometheus` (apt-get install -y prometheus); scripts/test does it")
	}
	return p
}

// TestMetricsPassPromtool: what /health/metrics serves after a workload is
// accepted by `promtool check metrics` (exit 0, no lint warning).
func TestMetricsPassPromtool(t *testing.T) {
	text := scrapeAfterWorkload(t)
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}

// TestCountersStartAtZeroOnScrape: the counters for label sets known at
// start are scraped at 0 before their first event, so rate() and
// increase() see the first auth-tier denial or breaker rejection.
func TestCountersStartAtZeroOnScrape(t *testing.T) {
	text := scrapeAfterWorkload(t)
	for _, series := range []string{
		`perfkit_ratelimit_decisions_total{outcome="denied",tier="auth"} 0`,
		`perfkit_ratelimit_decisions_total{outcome="unavailable",tier="auth"} 0`,
		`perfkit_resilience_breaker_rejections_total{resilience_policy="openai.breaker"} 0`,
		`perfkit_resilience_bulkhead_rejections_total{resilience_policy="openai.bulkhead"} 0`,
		`perfkit_resilience_retry_calls_total{outcome="gave_up",resilience_policy="openai.retry"} 0`,
	} {
		assert.Contains(t, text, series+"\n")
	}
}

// TestHealthMetricsOnFirstScrape: the checks run in the background, so
// their status gauges exist before anyone calls /health/detailed; each
// health endpoint has an http.route of its own.
func TestHealthMetricsOnFirstScrape(t *testing.T) {
	opts := testAppOptions
	opts.healthInterval = 0 // the binary's: every 10 s in the background
	app := startAppWith(t, testConfig(t, "sqlite"), opts)
	for _, p := range []string{"/health/live", "/health/ready"} {
		app.do(http.MethodGet, p, "")
	}
	var text string
	require.Eventually(t, func() bool {
		_, body := app.do(http.MethodGet, "/health/metrics", "")
		text = string(body)
		return strings.Contains(text, `perfkit_health_check_status{health_check_critical="true",health_check_name="database",health_status="pass"} 1`)
	}, 10*time.Second, 20*time.Millisecond, "the database check's status gauge without a call to /health/detailed")
	for _, name := range []string{"llm", "memory"} {
		assert.Contains(t, text, `perfkit_health_check_status{health_check_critical="false",health_check_name="`+name+`",health_status="pass"} 1`)
	}
	_, body := app.do(http.MethodGet, "/health/metrics", "")
	for _, route := range []string{"/health/live", "/health/ready", "/health/metrics"} {
		assert.Contains(t, string(body), `http_route="`+route+`"`)
	}
}

// TestRedisClientMetrics: go-redis's own instrumentation (redisotel)
// reports servio's Redis pool and command times, and the scrape still
// passes promtool.
func TestRedisClientMetrics(t *testing.T) {
	_, prefix := testenv.Redis(t)
	cfg := testConfig(t, "sqlite")
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(), prefix
	app := startApp(t, cfg)
	app.do(http.MethodGet, "/restaurants/1/menu", "")
	app.do(http.MethodGet, "/restaurants/1/menu", "")
	_, body := app.do(http.MethodGet, "/health/metrics", "")
	text := string(body)
	// go-redis reports in ms; Handler serves seconds (Prometheus's base unit).
	for _, name := range []string{"db_client_connections_usage{", "db_client_connections_max{",
		"db_client_connections_use_time_seconds_count{", "db_client_connections_timeouts_total{"} {
		assert.Contains(t, text, name)
	}
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}
