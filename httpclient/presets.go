package httpclient

import "time"

// The presets are functions returning a fresh Config each call, as in
// resilience: New(httpclient.OpenAI()) works, and the result can be adjusted
// (opts := httpclient.OpenAI(); opts.Timeout = time.Minute) without touching
// anyone else's.

// OpenAI returns the preset for OpenAI-compatible APIs (/v1/chat/completions), matching
// resilience.OpenAI: 30 s per request, at most 10 concurrent connections,
// 4 attempts (3 retries) with full jitter from 1 s up to 10 s (a Retry-After up to 10 s
// is waited, a longer one returns the response at once), and a breaker that trips when half of at least 10
// requests in 60 s fail (or after 5 consecutive failures) and probes
// again after 60 s. Non-streaming completions send headers only when
// done, so the response-header timeout equals the request timeout. Chat
// completions are POSTs: they are retried only with an Idempotency-Key.
func OpenAI() Config {
	return Config{
		Timeout:               30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxConnsPerHost:       10,
		MaxIdleConnsPerHost:   10,
		Retry: RetryConfig{
			MaxAttempts: 4,
			BaseDelay:   time.Second,
			MaxDelay:    10 * time.Second,
		},
		Breaker: BreakerConfig{
			ConsecutiveFailures: 5,
			FailureRatio:        0.5,
			MinRequests:         10,
			Window:              60 * time.Second,
			OpenTimeout:         60 * time.Second,
		},
	}
}

// Twilio returns the preset for Twilio's REST API, matching resilience.Twilio: 15 s per
// request, at most 20 connections, 3 attempts (2 retries) from 500 ms up to 5 s, and
// a breaker that trips when half of at least 10 requests in 60 s fail
// (or after 5 consecutive failures) and sends 2 probes after 30 s.
func Twilio() Config {
	return Config{
		Timeout:               15 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxConnsPerHost:       20,
		MaxIdleConnsPerHost:   20,
		Retry: RetryConfig{
			MaxAttempts: 3,
			BaseDelay:   500 * time.Millisecond,
			MaxDelay:    5 * time.Second,
		},
		Breaker: BreakerConfig{
			ConsecutiveFailures: 5,
			FailureRatio:        0.5,
			MinRequests:         10,
			Window:              60 * time.Second,
			OpenTimeout:         30 * time.Second,
			HalfOpenProbes:      2,
		},
	}
}

// Webhook returns the preset for delivering webhooks to many receiver hosts, matching
// resilience.Webhook: 2 minutes per delivery including retries, 10 s to
// the response headers of each attempt, at most 10 connections (4 idle)
// per receiver, 5 attempts (4 retries) from 1 s up to 30 s (POSTs only with an
// Idempotency-Key), and a breaker per receiver host after 5 consecutive
// failures that probes after 30 s, so one dead receiver costs one fast
// failure per delivery and does not hold up the rest.
func Webhook() Config {
	return Config{
		Timeout:               2 * time.Minute,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxConnsPerHost:       10,
		MaxIdleConnsPerHost:   4,
		Retry: RetryConfig{
			MaxAttempts: 5,
			BaseDelay:   time.Second,
			MaxDelay:    30 * time.Second,
		},
		Breaker: BreakerConfig{
			ConsecutiveFailures: 5,
			OpenTimeout:         30 * time.Second,
			MaxHosts:            10000,
		},
	}
}
