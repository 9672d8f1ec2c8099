package bench

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	goretry "github.com/sethvargo/go-retry"
	"github.com/sony/gobreaker/v2"

	"github.com/servio/perfkit/internal/benchcpu"
	"github.com/servio/perfkit/resilience"
)

// The callee succeeds: these benchmarks measure what each library adds to
// the happy path. failsafe-go is called with Get (no WithContext), its
// cheapest form.

func okCall(context.Context) (int, error) { return 1, nil }

func BenchmarkRetryOK(b *testing.B) {
	ctx := context.Background()
	b.Run("perfkit", func(b *testing.B) {
		fn := resilience.Retry(resilience.RetryConfig{MaxAttempts: 4, BaseDelay: 100 * time.Millisecond}, okCall)
		benchcpu.Loop(b, func() {
			_, _ = fn(ctx)
		})
	})
	b.Run("go-retry", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			bo := goretry.WithMaxRetries(3, goretry.WithFullJitter(goretry.NewExponential(100*time.Millisecond)))
			_, _ = goretry.DoValue(ctx, bo, okCall)
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[int](retrypolicy.NewBuilder[int]().WithMaxRetries(3).
			WithBackoff(100*time.Millisecond, 10*time.Second).WithJitterFactor(.5).Build())
		benchcpu.Loop(b, func() {
			_, _ = ex.Get(func() (int, error) { return okCall(ctx) })
		})
	})
}

func BenchmarkBreakerOK(b *testing.B) {
	ctx := context.Background()
	b.Run("perfkit", func(b *testing.B) {
		cb, _ := resilience.NewCircuitBreaker(resilience.BreakerConfig{})
		fn := resilience.Breaker(cb, okCall)
		benchcpu.Loop(b, func() {
			_, _ = fn(ctx)
		})
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Interval: time.Minute, BucketPeriod: 6 * time.Second})
		benchcpu.Loop(b, func() {
			_, _ = cb.Execute(func() (int, error) { return okCall(ctx) })
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[int](circuitbreaker.NewWithDefaults[int]())
		benchcpu.Loop(b, func() {
			_, _ = ex.Get(func() (int, error) { return okCall(ctx) })
		})
	})
}

func BenchmarkRetryBreakerOK(b *testing.B) {
	ctx := context.Background()
	b.Run("perfkit", func(b *testing.B) {
		p, _ := resilience.NewPipeline(resilience.PipelineConfig{
			Retry: &resilience.RetryConfig{MaxAttempts: 4}, Breaker: &resilience.BreakerConfig{},
		})
		fn := resilience.Wrap(p, okCall)
		benchcpu.Loop(b, func() {
			_, _ = fn(ctx)
		})
	})
	b.Run("gobreaker+go-retry", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Interval: time.Minute, BucketPeriod: 6 * time.Second})
		benchcpu.Loop(b, func() {
			bo := goretry.WithMaxRetries(3, goretry.WithFullJitter(goretry.NewExponential(100*time.Millisecond)))
			_, _ = goretry.DoValue(ctx, bo, func(ctx context.Context) (int, error) {
				return cb.Execute(func() (int, error) { return okCall(ctx) })
			})
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[int](retrypolicy.NewBuilder[int]().WithMaxRetries(3).
			WithBackoff(100*time.Millisecond, 10*time.Second).Build(), circuitbreaker.NewWithDefaults[int]())
		benchcpu.Loop(b, func() {
			_, _ = ex.Get(func() (int, error) { return okCall(ctx) })
		})
	})
}

func BenchmarkRetryBreakerTimeoutOK(b *testing.B) {
	ctx := context.Background()
	b.Run("perfkit", func(b *testing.B) {
		p, _ := resilience.NewPipeline(resilience.PipelineConfig{
			Timeout: 30 * time.Second, Retry: &resilience.RetryConfig{MaxAttempts: 4}, Breaker: &resilience.BreakerConfig{},
		})
		fn := resilience.Wrap(p, okCall)
		benchcpu.Loop(b, func() {
			_, _ = fn(ctx)
		})
	})
	b.Run("failsafe-go", func(b *testing.B) {
		ex := failsafe.With[int](timeout.New[int](30*time.Second), retrypolicy.NewBuilder[int]().WithMaxRetries(3).
			WithBackoff(100*time.Millisecond, 10*time.Second).Build(), circuitbreaker.NewWithDefaults[int]())
		benchcpu.Loop(b, func() {
			_, _ = ex.Get(func() (int, error) { return okCall(ctx) })
		})
	})
	b.Run("context.WithTimeout", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, _ = okCall(c)
			cancel()
		})
	})
}
