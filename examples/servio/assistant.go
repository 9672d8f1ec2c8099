package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/servio/perfkit/resilience"
)

// OpenAI chat-completions wire types (the subset servio uses).
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model     string        `json:"model"`
	Messages  []chatMessage `json:"messages"`
	MaxTokens int           `json:"max_tokens,omitempty"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
}

// upstreamError is an answer from the LLM upstream that is not a success.
// It carries the upstream's Retry-After, which resilience's retry honours.
type upstreamError struct {
	status     int
	retryAfter time.Duration
}

func (e *upstreamError) Error() string { return fmt.Sprintf("LLM upstream answered %d", e.status) }

// RetryAfter implements resilience.RetryAfterer.
func (e *upstreamError) RetryAfter() time.Duration { return e.retryAfter }

// llmClient asks an OpenAI-compatible chat-completions endpoint.
type llmClient struct {
	http    *http.Client
	baseURL string
	apiKey  string
	model   string
}

const systemPrompt = "You are Servio's restaurant assistant. Answer briefly and concretely."

// ask sends one question and returns the first choice's content.
func (c *llmClient) ask(ctx context.Context, question string) (string, error) {
	body, err := json.Marshal(chatRequest{Model: c.model, MaxTokens: 300, Messages: []chatMessage{
		{Role: "system", Content: systemPrompt}, {Role: "user", Content: question}}})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.baseURL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		ue := &upstreamError{status: resp.StatusCode}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			ue.retryAfter = time.Duration(secs) * time.Second
		}
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			// Our request was wrong: neither retry it nor count it against the upstream.
			return "", resilience.NotFailure(ue)
		}
		return "", ue
	}
	var out chatResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("LLM upstream: bad response: %w", err)
	}
	if len(out.Choices) == 0 {
		return "", errors.New("LLM upstream: no choices in response")
	}
	return out.Choices[0].Message.Content, nil
}

// normalizeQuestion folds case and whitespace and drops trailing
// punctuation, so "What's vegan?" and "  what's VEGAN " share a cache entry.
func normalizeQuestion(q string) string {
	q = strings.Join(strings.FieldsFunc(strings.ToLower(q), unicode.IsSpace), " ")
	return strings.TrimRightFunc(q, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
}

func assistantKey(normalized string) string {
	sum := sha256.Sum256([]byte(normalized))
	return "assistant:" + hex.EncodeToString(sum[:16])
}

const maxQuestionLen = 2000

type assistantRequest struct {
	Question string `json:"question"`
}

type assistantResponse struct {
	Question  string `json:"question"`
	Answer    string `json:"answer"`
	Model     string `json:"model"`
	Simulated bool   `json:"simulated"`
}

func (a *App) assistantQuery(w http.ResponseWriter, r *http.Request) {
	var req assistantRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	norm := normalizeQuestion(req.Question)
	if norm == "" || utf8.RuneCountInString(req.Question) > maxQuestionLen {
		a.fail(w, r, badRequest("question is required (at most %d characters)", maxQuestionLen))
		return
	}
	b, err := a.ask(r.Context(), norm)
	if err != nil {
		a.failUpstream(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, b)
}

func marshalAnswer(norm, answer, model string, simulated bool) ([]byte, error) {
	return json.Marshal(assistantResponse{Question: norm, Answer: answer, Model: model, Simulated: simulated})
}

// failUpstream maps LLM failures: an open circuit, a full bulkhead or the
// local rate limit is 503 (fail fast, retry later), a timeout 504, any
// other upstream failure 502.
func (a *App) failUpstream(w http.ResponseWriter, r *http.Request, err error) {
	var ue *upstreamError
	switch {
	case errors.Is(err, resilience.ErrOpen), errors.Is(err, resilience.ErrTooManyRequests),
		errors.Is(err, resilience.ErrBulkheadFull), errors.Is(err, resilience.ErrRateLimited):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "assistant temporarily unavailable")
	case errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, "assistant timed out")
	case errors.As(err, &ue):
		a.log.WarnContext(r.Context(), "assistant upstream failed", "status", ue.status)
		writeError(w, http.StatusBadGateway, "assistant upstream failed")
	default:
		if r.Context().Err() != nil {
			a.fail(w, r, err)
			return
		}
		a.log.WarnContext(r.Context(), "assistant upstream failed", "err", err)
		writeError(w, http.StatusBadGateway, "assistant upstream failed")
	}
}
