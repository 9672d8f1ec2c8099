package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAssistantAnswersCached: the same question, however it is typed, costs
// one upstream call.
func TestAssistantAnswersCached(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	for _, q := range []string{"Is the tiramisu vegan?", "is the TIRAMISU vegan", "  Is the tiramisu   vegan?! "} {
		a.doJSON("POST", "/assistant/query", `{"question":"`+q+`"}`, http.StatusOK, nil)
	}
	assert.Equal(t, int64(1), a.sim.calls.Load(), "normalized questions share one cached answer")

	var ans assistantResponse
	a.doJSON("POST", "/assistant/query", `{"question":"Is the tiramisu vegan?","restaurant_id":1}`, http.StatusOK, &ans)
	assert.Equal(t, int64(1), ans.RestaurantID)
	assert.Equal(t, int64(2), a.sim.calls.Load(), "a question about a restaurant is its own cache entry")
	assert.Contains(t, a.sim.lastPrompt(), "Tiramisu ($6.50)", "the restaurant's menu goes to the model as context")
	a.doJSON("POST", "/assistant/query", `{"question":"Is the tiramisu vegan?","restaurant_id":1}`, http.StatusOK, &ans)
	assert.Equal(t, int64(2), a.sim.calls.Load(), "asked again: cached")
	a.doJSON("PATCH", "/menu-items/4", `{"price_cents":700}`, http.StatusOK, nil)
	a.doJSON("POST", "/assistant/query", `{"question":"Is the tiramisu vegan?","restaurant_id":1}`, http.StatusOK, &ans)
	assert.Equal(t, int64(3), a.sim.calls.Load(), "a menu change retires answers about the old menu")
	assert.Contains(t, a.sim.lastPrompt(), "Tiramisu ($7.00)")
	a.doJSON("POST", "/assistant/query", `{"question":"hi","restaurant_id":999}`, http.StatusNotFound, nil)
	a.doJSON("POST", "/assistant/query", `{"question":"hi","restaurant_id":-1}`, http.StatusBadRequest, nil)
}

// TestAssistantBreakerOpensFailsFast: with the upstream failing every call,
// the resilience.OpenAI breaker opens (50% of at least 10 calls) and the
// assistant then answers 503 without calling the upstream at all.
func TestAssistantBreakerOpensFailsFast(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.SimLLMFailureRate = 1
	a := startApp(t, cfg).admin()
	codes := []int{}
	for range 5 {
		code, _ := a.do("POST", "/assistant/query", `{"question":"anything"}`)
		codes = append(codes, code)
		if code == http.StatusServiceUnavailable {
			break
		}
	}
	require.Equal(t, http.StatusServiceUnavailable, codes[len(codes)-1], "codes %v", codes)
	assert.Equal(t, http.StatusBadGateway, codes[0], "a failing upstream is 502 while the circuit is closed")
	assert.Equal(t, resilience.StateOpen, a.llmPipe.Breaker().State())

	before := a.sim.calls.Load()
	resp, err := http.Post(a.URL+"/assistant/query", "application/json", strings.NewReader(`{"question":"still there?"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, before, a.sim.calls.Load(), "an open circuit fails fast: no upstream call")

	var h struct {
		Status string
		Checks map[string][]struct{ Status, Output, ComponentID string }
	}
	code, body := a.do("GET", "/health/detailed", "")
	require.NoError(t, json.Unmarshal(body, &h), "%s", body)
	assert.Equal(t, http.StatusOK, code, "the LLM is not critical: %s", body)
	require.NotEmpty(t, h.Checks["llm"])
	assert.Equal(t, "warn", h.Checks["llm"][0].Status)
	assert.Contains(t, h.Checks["llm"][0].Output, "circuit open")
	assert.Contains(t, h.Checks["llm"][0].ComponentID, "SIMULATED")
}

// TestMetricsEndpoint: /health/metrics serves Prometheus text with HTTP,
// cache, DB-pool, operation and breaker metrics.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
	a.doJSON("POST", "/assistant/query", `{"question":"hi"}`, http.StatusOK, nil)
	code, body := a.do("GET", "/health/metrics", "")
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{
		`http_server_request_duration_seconds_count{`, `http_route="/restaurants/{id}/menu"`,
		"perfkit_cache_hits_total", "db_client_connections", "perfkit_operation_duration_seconds",
		`operation_name="menu.get"`, "perfkit_resilience_breaker_state{", "http_client_request_duration_seconds", "perfkit_ratelimit_decisions_total",
	} {
		assert.True(t, strings.Contains(string(body), name), "/health/metrics must contain %s", name)
	}
}

// TestAssistantTimeout: ASSISTANT_TIMEOUT cuts off a hanging upstream with
// a 504 instead of waiting for it.
func TestAssistantTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.SimLLMLatency = 10 * time.Second
	cfg.AssistantTimeout = 200 * time.Millisecond
	a := startApp(t, cfg).admin()
	code, body := a.do("POST", "/assistant/query", `{"question":"slow?"}`)
	assert.Equal(t, http.StatusGatewayTimeout, code, "%s", body)
}

// TestAssistantAnswersFromMenu: the simulated assistant answers from the
// asked restaurant's menu, so restaurants and questions get different,
// true answers.
func TestAssistantAnswersFromMenu(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.RateLimit = false
	a := startApp(t, cfg)
	ask := func(rid int, q string) string {
		var ans assistantResponse
		a.doJSON("POST", "/assistant/query", fmt.Sprintf(`{"restaurant_id":%d,"question":%q}`, rid, q), http.StatusOK, &ans)
		return ans.Answer
	}
	cheapest := ask(1, "What is the cheapest dish?")
	assert.Contains(t, cheapest, "Espresso ($2.90)", "restaurant 1's cheapest")
	assert.NotContains(t, cheapest, "Salmon")
	veg := ask(2, "Which dishes are vegetarian?")
	assert.Contains(t, veg, "Miso soup")
	assert.Contains(t, veg, "Edamame")
	assert.NotContains(t, veg, "Salmon nigiri", "fish is not vegetarian")
	assert.NotContains(t, veg, "Tuna roll")
	assert.Contains(t, ask(3, "Anything to drink?"), "Horchata")
	assert.Contains(t, ask(1, "Something spicy please"), "Diavola")
	assert.Contains(t, ask(1, "Do you have dessert?"), "Tiramisu")
	vegan := ask(1, "Is anything vegan?")
	assert.NotContains(t, vegan, "Margherita", "mozzarella is not vegan")
	assert.Contains(t, ask(2, "Is it gluten-free?"), "allergens")
	assert.NotEqual(t, ask(1, "What do you recommend?"), ask(2, "What do you recommend?"))
}

// TestSimAnswerWithoutMenu: without a restaurant the assistant says how
// to get an answer instead of naming dishes.
func TestSimAnswerWithoutMenu(t *testing.T) {
	t.Parallel()
	assert.Contains(t, simAnswer("cheapest?", nil), "restaurant_id")
	dishes := parseMenu([]chatMessage{{Role: "system", Content: menuPrefix + "\n- A ($1.50): x\n- B ($0.99)"}})
	assert.Equal(t, []simDish{{name: "A", desc: "x", cents: 150}, {name: "B", cents: 99}}, dishes)
}
