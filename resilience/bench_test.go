package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/servio/perfkit/internal/benchcpu"
)

func okCall(context.Context) (int, error) { return 1, nil }

// BenchmarkHappyPath measures what each policy adds to a call that
// succeeds. The cases are sub-benchmarks so that -count interleaves them and
// their ratios come from the same stretch of machine time.
func BenchmarkHappyPath(b *testing.B) {
	ctx := context.Background()
	run := func(name string, fn func(context.Context) (int, error)) {
		b.Run(name, func(b *testing.B) {
			benchcpu.Loop(b, func() { _, _ = fn(ctx) })
		})
	}
	pipeline := func(p PipelineConfig) func(context.Context) (int, error) {
		pl, err := NewPipeline(p)
		if err != nil {
			b.Fatal(err)
		}
		return Wrap(pl, okCall)
	}
	cb, err := NewCircuitBreaker(BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	// The same window settings perfkit's breaker uses by default.
	gb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Interval: time.Minute, BucketPeriod: 6 * time.Second})

	run("call", okCall)
	run("retry", Retry(RetryConfig{}, okCall))
	run("breaker", Breaker(cb, okCall))
	run("gobreaker.Execute", func(ctx context.Context) (int, error) {
		return gb.Execute(func() (int, error) { return okCall(ctx) })
	})
	run("retry+breaker", pipeline(PipelineConfig{Retry: &RetryConfig{}, Breaker: &BreakerConfig{}}))
	run("retry+breaker+timeout", pipeline(PipelineConfig{Timeout: time.Second, Retry: &RetryConfig{}, Breaker: &BreakerConfig{}}))
	run("context.WithTimeout", func(ctx context.Context) (int, error) {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return okCall(c)
	})
}

func okCall1(_ context.Context, n int) (int, error) { return n, nil }

func BenchmarkRetry1(b *testing.B) {
	b.ReportAllocs()
	fn := Retry1(RetryConfig{}, okCall1)
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

// BenchmarkWithSDK is the happy path with a real OTel SDK meter provider:
// the policies record nothing on it, so the cost matches the no-op case.
func BenchmarkWithSDK(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	p, err := NewPipeline(PipelineConfig{MeterProvider: mp, Retry: &RetryConfig{}, Breaker: &BreakerConfig{}, Bulkhead: &BulkheadConfig{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		fn   func(context.Context) (int, error)
	}{
		{"retry", Retry(RetryConfig{MeterProvider: mp}, okCall)},
		{"retry+breaker+bulkhead", Wrap(p, okCall)},
	} {
		fn := c.fn
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = fn(ctx)
			}
		})
	}
}

func BenchmarkTwoStepBreaker(b *testing.B) {
	b.ReportAllocs()
	cb, err := NewTwoStepBreaker(BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		done, err := cb.Allow()
		if err == nil {
			done(nil)
		}
	}
}
