package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

func okCall(context.Context) (int, error) { return 1, nil }

func BenchmarkRetry(b *testing.B) {
	b.ReportAllocs()
	fn := Retry(RetryPolicy{}, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func BenchmarkBreaker(b *testing.B) {
	b.ReportAllocs()
	cb, _ := NewCircuitBreaker(BreakerConfig{})
	fn := Breaker(cb, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func BenchmarkGobreakerExecute(b *testing.B) {
	b.ReportAllocs()
	cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Interval: time.Minute, BucketPeriod: 6 * time.Second})
	ctx := context.Background()
	for b.Loop() {
		_, _ = cb.Execute(func() (int, error) { return okCall(ctx) })
	}
}

func BenchmarkRetryBreaker(b *testing.B) {
	b.ReportAllocs()
	p, _ := NewPipeline(Policy{Retry: &RetryPolicy{}, Breaker: &BreakerConfig{}})
	fn := Wrap(p, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func BenchmarkRetryBreakerTimeout(b *testing.B) {
	b.ReportAllocs()
	p, _ := NewPipeline(Policy{Timeout: time.Second, Retry: &RetryPolicy{}, Breaker: &BreakerConfig{}})
	fn := Wrap(p, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func BenchmarkContextWithTimeout(b *testing.B) {
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = okCall(c)
		cancel()
	}
}

func okCall1(_ context.Context, n int) (int, error) { return n, nil }

func BenchmarkRetry1(b *testing.B) {
	b.ReportAllocs()
	fn := Retry1(RetryPolicy{}, okCall1)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx, 1)
	}
}

func BenchmarkBulkhead(b *testing.B) {
	b.ReportAllocs()
	bh, _ := NewBulkhead(BulkheadConfig{})
	fn := Isolate(bh, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func BenchmarkRateLimit(b *testing.B) {
	b.ReportAllocs()
	rl, _ := NewRateLimiter(RateLimitConfig{Limit: 1 << 30})
	fn := Throttle(rl, okCall)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

// BenchmarkPipelineFull is the OpenAI preset without its timeout: retry,
// breaker, bulkhead and rate limit around a call of one argument.
func BenchmarkPipelineFull(b *testing.B) {
	b.ReportAllocs()
	pol := OpenAI()
	pol.Timeout = 0
	pol.RateLimit.Limit, pol.RateLimit.Burst = 1<<30, 1<<30
	p, _ := NewPipeline(pol)
	fn := Wrap1(p, okCall1)
	ctx := context.Background()
	for b.Loop() {
		_, _ = fn(ctx, 1)
	}
}
