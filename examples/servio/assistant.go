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
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/internal/redact"
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

// llmClient asks an OpenAI-compatible chat-completions endpoint.
type llmClient struct {
	http    *http.Client
	baseURL string
	apiKey  string
	model   string
}

const systemPrompt = "You are Servio's restaurant assistant. Answer briefly and concretely."

// question is one assistant query.
type question struct {
	RestaurantID int64  // 0: no restaurant in particular
	Text         string // normalized (normalizeQuestion)
	Menu         string // the restaurant's menu as context
}

// ask sends one question and returns the first choice's content.
func (c *llmClient) ask(ctx context.Context, q question) (string, error) {
	msgs := []chatMessage{{Role: "system", Content: systemPrompt}}
	if q.Menu != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: "The guest is asking about this menu: " + q.Menu})
	}
	msgs = append(msgs, chatMessage{Role: "user", Content: q.Text})
	body, err := json.Marshal(chatRequest{Model: c.model, MaxTokens: 300, Messages: msgs})
	if err != nil {
		return "", err
	}
	endpoint, err := joinURL(c.baseURL, "chat/completions")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	// A failing status becomes an *httpclient.StatusError carrying the
	// upstream's Retry-After (resilience's retry waits for it); a 4xx other
	// than 408/429 is marked resilience.NotFailure: our request was wrong,
	// so it is neither retried nor counted against the upstream.
	resp, err := httpclient.CheckStatus(c.http.Do(req))
	if err != nil {
		// *url.Error quotes the URL, query string (api-key=…) included;
		// redacted before resilience's retry log or anyone else prints it.
		return "", redact.Error(err)
	}
	defer resp.Body.Close()
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

// assistantKey is the cache key of an answer: the restaurant and a hash of
// the normalized question and the menu it was asked about, so a menu change
// retires the answers that quoted the old one without any invalidation.
func assistantKey(q question) string {
	h := sha256.New()
	h.Write([]byte(q.Text))
	h.Write([]byte{0})
	h.Write([]byte(q.Menu))
	return "assistant:" + strconv.FormatInt(q.RestaurantID, 10) + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// menuContext summarizes a restaurant's cached menu response for the model.
func menuContext(menuJSON []byte) (string, error) {
	var m menuResponse
	if err := json.Unmarshal(menuJSON, &m); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, it := range m.Items[:min(len(m.Items), 50)] {
		fmt.Fprintf(&b, "\n- %s ($%d.%02d)", oneLine(it.Name), it.PriceCents/100, it.PriceCents%100)
		if it.Description != "" {
			b.WriteString(": " + oneLine(it.Description))
		}
	}
	return b.String(), nil
}

// oneLine keeps a menu text on its line of the prompt.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

const maxQuestionLen = 2000

type assistantRequest struct {
	Question     string `json:"question"`
	RestaurantID int64  `json:"restaurant_id"` // optional: answer about this restaurant's menu
}

type assistantResponse struct {
	RestaurantID int64  `json:"restaurant_id,omitempty"`
	Question     string `json:"question"`
	Answer       string `json:"answer"`
	Model        string `json:"model"`
	Simulated    bool   `json:"simulated"`
}

func (a *App) assistantQuery(w http.ResponseWriter, r *http.Request) {
	var req assistantRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	q := question{RestaurantID: req.RestaurantID, Text: normalizeQuestion(req.Question)}
	switch {
	case q.Text == "" || utf8.RuneCountInString(req.Question) > maxQuestionLen:
		a.fail(w, r, badRequest("question is required (at most %d characters)", maxQuestionLen))
		return
	case !plainText(req.Question, true):
		a.fail(w, r, badRequest("question must not hold control characters other than tab and line breaks"))
		return
	case q.RestaurantID < 0:
		a.fail(w, r, badRequest("restaurant_id must be a positive integer"))
		return
	case q.RestaurantID > 0:
		menu, err := a.svc.Menu(r.Context(), q.RestaurantID) // cached; 404 for an unknown restaurant
		if err == nil {
			q.Menu, err = menuContext(menu.Body)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
	}
	b, err := a.ask(r.Context(), q)
	if err != nil {
		a.failUpstream(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, b)
}

func marshalAnswer(q question, answer, model string, simulated bool) ([]byte, error) {
	return json.Marshal(assistantResponse{RestaurantID: q.RestaurantID, Question: q.Text, Answer: answer, Model: model, Simulated: simulated})
}

// failUpstream maps LLM failures: a client-throttle rejection (Retry-After
// its RetryAfter), an open circuit, a full bulkhead or the local rate limit
// is 503 (fail fast, retry later), a timeout 504, any other upstream
// failure 502.
func (a *App) failUpstream(w http.ResponseWriter, r *http.Request, err error) {
	var (
		se *httpclient.StatusError
		te *httpclient.ThrottleError
	)
	switch {
	case errors.As(err, &te):
		// The client throttle refused locally: the upstream has been
		// refusing requests, and this one never left.
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(max(te.RetryAfter(), time.Second).Seconds())), 10))
		writeError(w, http.StatusServiceUnavailable, "assistant upstream overloaded, request throttled: retry later")
	case errors.Is(err, resilience.ErrOpen), errors.Is(err, resilience.ErrTooManyRequests),
		errors.Is(err, resilience.ErrBulkheadFull), errors.Is(err, resilience.ErrRateLimited):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "assistant temporarily unavailable")
	case errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, "assistant timed out")
	case errors.As(err, &se):
		a.log.WarnContext(r.Context(), "assistant upstream failed", "status", se.StatusCode)
		writeError(w, http.StatusBadGateway, "assistant upstream failed")
	default:
		if r.Context().Err() != nil {
			a.fail(w, r, err)
			return
		}
		a.log.WarnContext(r.Context(), "assistant upstream failed", "err", redact.String(err.Error()))
		writeError(w, http.StatusBadGateway, "assistant upstream failed")
	}
}

// joinURL appends elem to base's path, keeping base's query string (an
// api-key=… of an Azure-style endpoint) after the path, where it belongs.
// Its error never quotes base.
func joinURL(base, elem string) (string, error) {
	u, err := redact.ParseURL(base)
	if err != nil {
		return "", err
	}
	return u.JoinPath(elem).String(), nil
}
