package resilience

import "time"

// OpenAI returns the pipeline config Servio used around every OpenAI call: 30 s
// timeout over the whole call, 4 attempts (3 retries) with full jitter from
// 1 s up to 10 s, a breaker that trips at 50% failures over at least 10
// calls in a 60 s window and probes again after 60 s, 100 requests per
// minute (rejections are retried after their RetryAfter) and 10 concurrent
// calls with 10 more queued for up to 5 s. Each call returns a fresh value:
// change any field before NewPipeline. Mark 4xx errors other than 429 with
// NotFailure (or Permanent) so they neither trip the breaker nor retry.
func OpenAI() PipelineConfig {
	return PipelineConfig{
		Name:    "openai",
		Timeout: 30 * time.Second,
		Retry:   &RetryConfig{MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 10 * time.Second, Jitter: JitterFull},
		Breaker: &BreakerConfig{
			FailureRatio: 0.5, MinRequests: 10, Window: 60 * time.Second,
			OpenTimeout: 60 * time.Second, HalfOpenProbes: 1,
		},
		Bulkhead:  &BulkheadConfig{MaxConcurrent: 10, MaxQueue: 10, QueueTimeout: 5 * time.Second},
		RateLimit: &RateLimitConfig{Limit: 100, Per: time.Minute, Burst: 10},
	}
}

// Twilio returns a pipeline config for Twilio's REST API (SMS, voice): 15 s timeout,
// 3 attempts with full jitter from 500 ms up to 5 s, a breaker that trips at
// 50% failures over at least 10 calls in 60 s and probes after 30 s, 100
// requests per second (Twilio's default account concurrency) and 20
// concurrent calls. Each call returns a fresh value.
func Twilio() PipelineConfig {
	return PipelineConfig{
		Name:    "twilio",
		Timeout: 15 * time.Second,
		Retry:   &RetryConfig{MaxAttempts: 3, BaseDelay: 500 * time.Millisecond, MaxDelay: 5 * time.Second},
		Breaker: &BreakerConfig{
			FailureRatio: 0.5, MinRequests: 10, Window: 60 * time.Second,
			OpenTimeout: 30 * time.Second, HalfOpenProbes: 2,
		},
		Bulkhead:  &BulkheadConfig{MaxConcurrent: 20},
		RateLimit: &RateLimitConfig{Limit: 100, Per: time.Second},
	}
}

// Webhook returns a pipeline config for delivering webhooks to endpoints you do not
// control: 10 s per attempt, 5 attempts with decorrelated jitter from 1 s up
// to 30 s within 2 minutes, a breaker that opens after 5 consecutive
// failures and probes after 30 s, and 50 concurrent deliveries. Use one
// pipeline per destination host (or a Breakers registry) so one dead
// receiver does not stop the rest. Each call returns a fresh value.
func Webhook() PipelineConfig {
	return PipelineConfig{
		Name:    "webhook",
		Timeout: 2 * time.Minute,
		Retry: &RetryConfig{
			MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 30 * time.Second,
			MaxElapsed: 2 * time.Minute, Jitter: JitterDecorrelated, AttemptTimeout: 10 * time.Second,
		},
		Breaker:  &BreakerConfig{ConsecutiveFailures: 5, OpenTimeout: 30 * time.Second},
		Bulkhead: &BulkheadConfig{MaxConcurrent: 50},
	}
}
