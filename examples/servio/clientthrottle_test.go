package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAssistantClientThrottle: with an upstream that answers 503 to 9 of
// every 10 requests, the LLM client's throttle soon rejects locally, and
// the assistant answers those questions with a 503, a Retry-After and
// servio's JSON error body without calling the upstream at all. The
// upstream, counting on its own side, sees a bounded share of the
// attempts: each attempt after the first s = max(MinRequests, K·A + 1) is
// sent with probability at most (1 + K·A)/(requests + 1), so at most
// s + (1 + K·A)·ln(N/s) of N attempts arrive (A: its accepts).
// The pipeline's breaker and rate limit are taken out so the throttle
// alone is under test (with its 50 % failure ratio the breaker would open
// as soon as the throttle starts).
func TestAssistantClientThrottle(t *testing.T) {
	t.Parallel()
	const calls = 150
	on := askFlakyUpstream(t, true, calls)
	off := askFlakyUpstream(t, false, calls)
	const k, maxAttempts, minRequests = 2.0, 4, 10
	n := float64(calls * maxAttempts) // attempts, at most
	m, acc := float64(on.reached), float64(on.accepted)
	s := math.Max(minRequests, k*acc+1)
	expect := s + (1+k*acc)*math.Log(n/s)
	bound := expect + 4*math.Sqrt(expect)
	t.Logf("%d questions with the throttle: statuses %v; upstream reached %.0f times (accepted %.0f), bound %.0f; %d throttled without an upstream call",
		calls, on.codes, m, acc, bound, on.fastThrottled)
	t.Logf("%d questions without it: statuses %v; upstream reached %d times", calls, off.codes, off.reached)
	assert.LessOrEqual(t, m, bound, "attempts that reached the upstream")
	assert.Greater(t, on.fastThrottled, calls/2, "questions answered 503 by the throttle without an upstream call")
	assert.Zero(t, off.fastThrottled, "CLIENT_THROTTLE=off: every question reaches the upstream")
	assert.Greater(t, off.reached, int64(2*calls), "without the throttle, retries multiply the attempts")
}

type flakyRun struct {
	reached, accepted int64
	codes             map[int]int
	fastThrottled     int // 503s that made no upstream call
}

// askFlakyUpstream asks calls distinct questions of an assistant whose
// upstream answers 503 to 9 of every 10 requests, counting on the
// upstream's side.
func askFlakyUpstream(t *testing.T, throttle bool, calls int) flakyRun {
	var reached, accepted atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if reached.Add(1)%10 != 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
			return
		}
		accepted.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"The margherita."}}]}`)
	}))
	t.Cleanup(upstream.Close)

	cfg := testConfig(t, "sqlite")
	cfg.OpenAIBaseURL = upstream.URL + "/v1"
	cfg.RateLimit = false
	require.True(t, cfg.ClientThrottle, "on by default")
	cfg.ClientThrottle = throttle
	opts := testAppOptions
	opts.llmPolicy = func(p *resilience.PipelineConfig) {
		testAppOptions.llmPolicy(p)
		p.Breaker, p.RateLimit = nil, nil
	}
	a := startAppWith(t, cfg, opts).admin()

	run := flakyRun{codes: map[int]int{}}
	for i := range calls {
		before := reached.Load()
		resp, err := http.Post(a.URL+"/assistant/query", "application/json",
			strings.NewReader(fmt.Sprintf(`{"question":"what is good, take %d?"}`, i)))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		run.codes[resp.StatusCode]++
		if resp.StatusCode != http.StatusServiceUnavailable {
			continue
		}
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		assert.Contains(t, e.Error, "throttled")
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		if reached.Load() == before {
			run.fastThrottled++
		}
	}
	run.reached, run.accepted = reached.Load(), accepted.Load()
	return run
}

// TestClientThrottleConfig: CLIENT_THROTTLE and CLIENT_THROTTLE_K (and the
// flags) set the throttle; -baseline leaves the LLM client without one.
func TestClientThrottleConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CLIENT_THROTTLE": "off", "CLIENT_THROTTLE_K": "3"}
	cfg, err := parseConfig("servio", nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.NoError(t, err)
	assert.False(t, cfg.ClientThrottle)
	assert.Equal(t, 3.0, cfg.ClientThrottleK)
	cfg, err = parseConfig("servio", []string{"-client-throttle-k", "1.5"}, func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	assert.True(t, cfg.ClientThrottle, "on by default")
	assert.Equal(t, 1.5, cfg.ClientThrottleK)
	_, err = parseConfig("servio", []string{"-client-throttle-k", "0.5"}, func(string) string { return "" }, io.Discard, nil)
	assert.ErrorContains(t, err, "CLIENT_THROTTLE_K")

	cfg = testConfig(t, "sqlite")
	cfg.Baseline = true
	assert.Nil(t, startApp(t, cfg).llm.http.Transport, "-baseline: a default http.Client for the LLM, no throttle")
}
