package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLLM is an OpenAI-compatible chat-completions upstream whose behaviour
// the test switches: "ok", "fail" (500), "slow" (answers after 5 s) or
// "429" (Retry-After: 1).
type fakeLLM struct {
	mode  atomic.Value
	calls atomic.Int64
	mu    sync.Mutex
	at    []time.Time
}

func newFakeLLM(t *testing.T) (*fakeLLM, *httptest.Server) {
	f := &fakeLLM{}
	f.mode.Store("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		f.at = append(f.at, time.Now())
		f.mu.Unlock()
		switch f.mode.Load().(string) {
		case "fail":
			http.Error(w, `{"error":{"message":"boom"}}`, http.StatusInternalServerError)
			return
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
				return
			}
		case "429":
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"rate limited"}}`, http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c1", "object": "chat.completion", "model": "fake",
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": "fake answer"}}}})
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func ask(in *instance, q string) (int, []byte, time.Duration) {
	return in.do("POST", "/assistant/query", map[string]string{"question": q})
}

// TestLLMUpstreamFaults: the assistant's upstream fails, hangs and rate
// limits. Answers already cached keep being served, the breaker opens so
// callers fail fast with 503, and a 429's Retry-After is honoured.
func TestLLMUpstreamFaults(t *testing.T) {
	t.Parallel()
	llm, srv := newFakeLLM(t)
	a := startServio(t, "OPENAI_BASE_URL="+srv.URL+"/v1", "OPENAI_API_KEY=sk-test-secret-value")

	st, body, _ := ask(a, "Is the kitchen open late?")
	require.Equal(t, 200, st, "healthy upstream: %s", body)
	before := llm.calls.Load()
	st, _, _ = ask(a, "  is the KITCHEN open late? ")
	assert.Equal(t, 200, st)
	assert.Equal(t, before, llm.calls.Load(), "the same (normalized) question must be answered from the cache")

	t.Run("429 Retry-After honoured", func(t *testing.T) {
		llm.mode.Store("429")
		llm.mu.Lock()
		llm.at = nil
		llm.mu.Unlock()
		go func() { time.Sleep(300 * time.Millisecond); llm.mode.Store("ok") }()
		st, body, _ := ask(a, "Which dish is the most popular?")
		assert.Equal(t, 200, st, "a 429 with Retry-After: 1 must be retried after a second: %s", body)
		llm.mu.Lock()
		defer llm.mu.Unlock()
		require.GreaterOrEqual(t, len(llm.at), 2)
		assert.GreaterOrEqual(t, llm.at[1].Sub(llm.at[0]), 900*time.Millisecond, "the retry must wait for Retry-After")
	})

	t.Run("failing upstream opens the breaker", func(t *testing.T) {
		llm.mode.Store("fail")
		var last int
		for i := range 30 {
			last, _, _ = ask(a, fmt.Sprintf("failing question %d", i))
			assert.GreaterOrEqual(t, last, 500, "an upstream failure is a 5xx to the caller")
		}
		callsOpen := llm.calls.Load()
		// The fastest of three, so one scheduler stall of this shared
		// machine cannot fail the check; retries or an upstream call would
		// slow all three.
		fastest := time.Hour
		for i := range 3 {
			st, body, lat := ask(a, fmt.Sprint("one more while open ", i))
			assert.Equal(t, 503, st, "open breaker: %s", body)
			fastest = min(fastest, lat)
		}
		assert.Less(t, fastest, 100*time.Millisecond, "an open breaker must fail fast")
		assert.Equal(t, callsOpen, llm.calls.Load(), "an open breaker must not call the upstream")
		st, _, _ = ask(a, "Is the kitchen open late?")
		assert.Equal(t, 200, st, "a cached answer must still be served while the upstream fails")
	})
}

// TestLLMUpstreamSlow: an upstream that hangs is cut off by the assistant's
// timeout, not waited on forever, and never yields a 200 with no answer.
func TestLLMUpstreamSlow(t *testing.T) {
	t.Parallel()
	llm, srv := newFakeLLM(t)
	llm.mode.Store("slow")
	a := startServio(t, "OPENAI_BASE_URL="+srv.URL+"/v1", "ASSISTANT_TIMEOUT=500ms")
	st, body, lat := ask(a, "anything slow?")
	assert.GreaterOrEqual(t, st, 500, "a hanging upstream must be an error: %s", body)
	assert.Less(t, lat, 4*time.Second, "the assistant's timeout must cut off a hanging upstream")
}
