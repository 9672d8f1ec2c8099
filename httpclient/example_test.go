package httpclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/resilience"
)

// An OpenAI-compatible /v1/chat/completions call through the OpenAI preset.
// The upstream here is an in-process simulator; point the URL at
// https://api.openai.com (or OPENAI_BASE_URL) for the real one.
func ExampleNew_openAI() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"Try the margherita."}}]}`)
	}))
	defer upstream.Close()

	client, err := httpclient.New(httpclient.OpenAI())
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()

	ctx := httpclient.WithRoute(context.Background(), "/v1/chat/completions")
	body := strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What should I order?"}]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, upstream.URL+"/v1/chat/completions", body)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-...")
	req.Header.Set("Content-Type", "application/json")
	// POSTs are retried only with an idempotency key.
	req.Header.Set("Idempotency-Key", "assistant-query-42")

	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, out.Choices[0].Message.Content)
	// Output: 200 Try the margherita.
}

// The zero Config gives the tuned pool (50 connections per host, 50 idle),
// 3 attempts (2 retries, as resilience), a per-host breaker and metrics.
func ExampleNew() {
	client, err := httpclient.New(httpclient.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()
	fmt.Printf("%T\n", client)
	// Output: *http.Client
}

// Each layer works alone on any RoundTripper, here retry on the default
// transport of an existing client.
func ExampleNewRetry() {
	calls := 0
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()

	rt, err := httpclient.NewRetry(http.DefaultTransport, httpclient.RetryConfig{MaxAttempts: 3})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	resp, err := client.Get(upstream.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b), "after", calls, "attempts")
	// Output: 200 ok after 2 attempts
}

// Route templates keep ids out of metric attributes.
func ExampleWithRoute() {
	ctx := httpclient.WithRoute(context.Background(), "/v1/orders/{id}")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://orders.internal/v1/orders/8812", nil)
	fmt.Println(httpclient.RouteFromRequest(req))
	// Output: /v1/orders/{id}
}

// An open breaker fails fast with an error that errors.Is recognises
// through the *url.Error that http.Client adds.
func ExampleBreakerOpenError() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer upstream.Close()

	opts := httpclient.Config{DisableRetry: true}
	opts.Breaker.ConsecutiveFailures = 2
	client, err := httpclient.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Get(upstream.URL)
		if errors.Is(err, httpclient.ErrBreakerOpen) {
			fmt.Println(i, "breaker open, upstream not called")
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(i, resp.StatusCode)
	}
	// Output:
	// 0 500
	// 1 500
	// 2 breaker open, upstream not called
}

// CheckStatus makes an HTTP call a plain func(ctx, A) (T, error) for
// resilience: a 503 is retried (after its Retry-After when it has one), a
// 404 comes back at once, marked as not the dependency's failure.
func ExampleCheckStatus() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/menu/404":
			http.Error(w, "no such restaurant", http.StatusNotFound)
		case calls.Add(1) == 1:
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, "margherita")
		}
	}))
	defer srv.Close()

	// The pipeline retries, so the client's own retry layer is off.
	client, err := httpclient.New(httpclient.Config{DisableRetry: true})
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()
	pipe, err := resilience.NewPipeline(resilience.PipelineConfig{
		Retry:   &resilience.RetryConfig{MaxAttempts: 3},
		Breaker: &resilience.BreakerConfig{},
	})
	if err != nil {
		log.Fatal(err)
	}
	get := resilience.Wrap1(pipe, func(ctx context.Context, url string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := httpclient.CheckStatus(client.Do(req))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	})

	menu, err := get(context.Background(), srv.URL+"/menu/1")
	fmt.Println(menu, err, calls.Load())
	_, err = get(context.Background(), srv.URL+"/menu/404")
	var se *httpclient.StatusError
	fmt.Println(errors.As(err, &se), se.Method, se.StatusCode, se.Body, resilience.IsNotFailure(err))
	// Output:
	// margherita <nil> 2
	// true GET 404 no such restaurant true
}

// A host that answers 503 to everything: once the window holds
// MinRequests requests and none was accepted, the throttle rejects
// locally, before the breaker (5 consecutive failures) would trip. Random
// is fixed here so the output is deterministic; the default draws from
// math/rand/v2.
func ExampleNewThrottle() {
	var reached atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	client, err := httpclient.New(httpclient.Config{
		DisableRetry: true,
		Throttle:     httpclient.ThrottleConfig{MinRequests: 4, Random: func() float64 { return 0 }},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()

	var throttled int
	var te *httpclient.ThrottleError
	for range 100 {
		resp, err := client.Get(upstream.URL)
		if errors.As(err, &te) {
			throttled++
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
	}
	fmt.Println("reached the host:", reached.Load(), "throttled:", throttled)
	fmt.Println("refused:", te.Refused(), "retry after:", te.RetryAfter())
	// Output:
	// reached the host: 4 throttled: 96
	// refused: true retry after: 1s
}
