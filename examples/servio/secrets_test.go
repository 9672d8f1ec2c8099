package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/servio/perfkit/internal/testenv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startLoggedApp is startApp with servio's JSON log, at Debug, captured.
func startLoggedApp(t *testing.T, cfg Config) (*testApp, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := newApp(ctx, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), testAppOptions)
	require.NoError(t, err)
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, app.Close())
	})
	return &testApp{App: app, t: t, URL: srv.URL}, logs
}

// TestLLMBaseURLKeepsItsQuery: /chat/completions goes after the base URL's
// path, not after its query string, and the query reaches the upstream.
func TestLLMBaseURLKeepsItsQuery(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.URL.RawQuery)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(chatResponse{Model: "m", Choices: []chatChoice{{Message: chatMessage{Role: "assistant", Content: "yes"}}}})
	}))
	t.Cleanup(up.Close)
	cfg := testConfig(t, "sqlite")
	cfg.OpenAIBaseURL = up.URL + "/openai/deployments/gpt/?api-version=2024-06-01&api-key=AzureKey7secret"
	a, logs := startLoggedApp(t, cfg)
	a.doJSON("POST", "/assistant/query", `{"question":"anything vegan?"}`, http.StatusOK, nil)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"/openai/deployments/gpt/chat/completions api-version=2024-06-01&api-key=AzureKey7secret"}, got)
	assert.NotContains(t, logs.String(), "AzureKey7secret")
}

// TestConfiguredURLSecretsNeverLogged is issue 18's item 5: secrets in a
// configured URL (userinfo, api-key, key, sig, token) reach no log line,
// health body or error, on the paths that used to print them — the
// assistant's WARN for a failing upstream (whose error quotes the URL),
// the Redis startup WARN and the LLM check's component id.
func TestConfiguredURLSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused from now on
	cfg := testConfig(t, "sqlite")
	cfg.OpenAIBaseURL = strings.Replace(deadURL, "://", "://user:UserinfoPw7secret@", 1) +
		"/v1?api-key=ApiKey7secret&key=GKey7secret&sig=Sig7secret&token=Tok7secret"
	cfg.RedisURL = "redis://:RedisPw7secret@127.0.0.1:1/0"
	a, logs := startLoggedApp(t, cfg)
	code, _ := a.do("POST", "/assistant/query", `{"question":"anything?"}`)
	assert.Equal(t, http.StatusBadGateway, code)
	_, detailed := a.do("GET", "/health/detailed", "")
	out := logs.String() + string(detailed)
	require.Contains(t, out, "assistant upstream failed")
	require.Contains(t, out, "Redis not reachable at startup")
	require.Contains(t, string(detailed), `"llm"`, "the details are shown to a loopback caller")
	assert.NotContains(t, out, "7secret", "a configured secret leaked:\n%s", out)
}

// TestConfigNeverPrintsSecrets pushes the leak table through the
// configuration: -h (which prints the defaults taken from the environment)
// and the errors of URLs that do not parse.
func TestConfigNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range redacttest.Cases(3) {
		env := map[string]string{"DATABASE_URL": tc.Input, "REDIS_URL": tc.Input, "OPENAI_BASE_URL": tc.Input, "OTEL_EXPORTER_OTLP_ENDPOINT": tc.Input}
		getenv := func(k string) string { return env[k] }
		var usage bytes.Buffer
		_, err := parseConfig("servio", []string{"-h"}, getenv, &usage, nil)
		require.Error(t, err)
		redacttest.NoLeak(t, tc, usage.String())
		_, err = parseConfig("servio", nil, getenv, io.Discard, nil)
		if err != nil {
			redacttest.NoLeak(t, tc, err.Error())
		}
		redacttest.NoLeak(t, tc, redactURL(tc.Input))
		if _, err := parseRedisURL(tc.Input); err != nil {
			redacttest.NoLeak(t, tc, err.Error())
		}
		if _, err := joinURL(tc.Input, "chat/completions"); err != nil {
			redacttest.NoLeak(t, tc, err.Error())
		}
	}
}
