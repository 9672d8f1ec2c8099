package main

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// simLLM is an in-process stand-in for an OpenAI-compatible chat
// completions API, started when OPENAI_BASE_URL is not set. Its latency and
// failure rate (SIM_LLM_LATENCY, SIM_LLM_FAILURE_RATE) let retries and the
// circuit breaker be watched working. It is safe for concurrent use.
type simLLM struct {
	simServer
	latency time.Duration
	failPPM atomic.Uint32 // failures per million requests
	calls   atomic.Int64
	last    atomic.Pointer[string] // the last request's messages, for tests
}

// startSimLLM listens on a free loopback port and serves until Close.
func startSimLLM(latency time.Duration, failureRate float64, log *slog.Logger) (*simLLM, error) {
	s := &simLLM{latency: latency}
	s.setFailureRate(failureRate)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.complete)
	if err := s.serve("simulated LLM", mux, log); err != nil {
		return nil, err
	}
	return s, nil
}

// setFailureRate changes the share (0..1) of requests answered 503 from
// now on; tests use it to break the upstream and let it recover.
func (s *simLLM) setFailureRate(r float64) { s.failPPM.Store(uint32(r * 1e6)) }

// BaseURL is the OpenAI-style base URL ("http://127.0.0.1:port/v1").
func (s *simLLM) BaseURL() string { return s.origin() + "/v1" }

// lastPrompt returns the messages of the last request, one per line.
func (s *simLLM) lastPrompt() string {
	if p := s.last.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *simLLM) complete(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"message": "bad request", "type": "invalid_request_error"}})
		return
	}
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if ppm := s.failPPM.Load(); ppm > 0 && rand.Uint32N(1e6) < ppm {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"message": "simulated upstream failure", "type": "server_error"}})
		return
	}
	var all strings.Builder
	for _, m := range req.Messages {
		all.WriteString(m.Content + "\n")
	}
	prompt := all.String()
	s.last.Store(&prompt)
	q := req.Messages[len(req.Messages)-1].Content
	answer := "(simulated) For " + strconv.Quote(strings.TrimSpace(q)) + ": " + simAnswer(q, parseMenu(req.Messages))
	writeJSON(w, http.StatusOK, chatResponse{
		ID: "chatcmpl-sim", Object: "chat.completion", Model: req.Model,
		Choices: []chatChoice{{Index: 0, Message: chatMessage{Role: "assistant", Content: answer}, FinishReason: "stop"}},
	})
}
