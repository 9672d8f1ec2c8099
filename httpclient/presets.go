package httpclient

import "time"

// Presets for common upstreams, matching resilience's presets where they
// overlap. They are plain values: New(httpclient.OpenAI) works, and a copy can
// be adjusted (opts := httpclient.OpenAI; opts.Timeout = time.Minute). They
// hold no pointers or slices, so copies share nothing.
var (
	// OpenAI suits OpenAI-compatible APIs (/v1/chat/completions): 30 s per
	// request, at most 10 concurrent connections, 3 retries with backoff from
	// 1 s to 10 s (Retry-After honoured within 10 s), and a breaker that
	// trips when half of at least 10 requests in a minute fail and stays open
	// 60 s. Non-streaming completions send headers only when done, so the
	// response-header timeout equals the request timeout. Chat completions
	// are POSTs: they are retried only with an Idempotency-Key header.
	OpenAI = Options{
		Timeout:               30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxConnsPerHost:       10,
		MaxIdleConnsPerHost:   10,
		Retry: RetryOptions{
			MaxRetries: 3,
			BaseDelay:  time.Second,
			MaxDelay:   10 * time.Second,
		},
		Breaker: BreakerOptions{
			FailureRatio: 0.5,
			MinRequests:  10,
			Interval:     60 * time.Second,
			OpenTimeout:  60 * time.Second,
		},
	}

	// Twilio suits Twilio's REST API, which limits concurrent requests per
	// account and answers 429 beyond it: 15 s per request, at most 20
	// connections, 3 retries from 500 ms to 5 s, breaker after 5 consecutive
	// failures open for 30 s.
	Twilio = Options{
		Timeout:               15 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxConnsPerHost:       20,
		MaxIdleConnsPerHost:   20,
		Retry: RetryOptions{
			MaxRetries: 3,
			BaseDelay:  500 * time.Millisecond,
			MaxDelay:   5 * time.Second,
		},
		Breaker: BreakerOptions{
			ConsecutiveFailures: 5,
			OpenTimeout:         30 * time.Second,
		},
	}

	// Webhook suits delivering webhooks to many customer hosts: 10 s per
	// request, a fast 5 s header timeout, at most 10 connections per host,
	// 2 retries from 1 s to 5 s (POSTs only with an Idempotency-Key), and a
	// breaker per receiver host after 3 consecutive failures, open 60 s, so
	// one dead receiver costs one fast failure per delivery.
	Webhook = Options{
		Timeout:               10 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
		MaxConnsPerHost:       10,
		MaxIdleConnsPerHost:   4,
		Retry: RetryOptions{
			MaxRetries: 2,
			BaseDelay:  time.Second,
			MaxDelay:   5 * time.Second,
		},
		Breaker: BreakerOptions{
			ConsecutiveFailures: 3,
			OpenTimeout:         60 * time.Second,
			MaxHosts:            10000,
		},
	}
)
