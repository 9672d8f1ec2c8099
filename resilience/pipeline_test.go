package resilience

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

func TestPipelineRetryOutsideBreaker(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{
		Retry:   &RetryConfig{MaxAttempts: 3, Clock: newAutoClock()},
		Breaker: &BreakerConfig{ConsecutiveFailures: 3},
	})
	require.NoError(t, err)
	fn, calls := failing(100, errBoom)
	_, err = Do(context.Background(), p, fn)
	assert.ErrorIs(t, err, errBoom)
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.Equal(t, int32(3), calls.Load())
	assert.Equal(t, StateOpen, p.Breaker().State(), "each attempt is counted by the breaker")

	_, err = Do(context.Background(), p, fn)
	assert.ErrorIs(t, err, ErrOpen)
	assert.NotErrorIs(t, err, ErrRetriesExhausted, "an open breaker is not retried")
	assert.Equal(t, int32(3), calls.Load())
}

func TestPipelineTimeoutOutsideRetry(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	p, err := NewPipeline(PipelineConfig{
		Timeout: 10 * time.Millisecond, TimeoutMessage: "llm", MeterProvider: mp,
		Retry: &RetryConfig{MaxAttempts: 5, Clock: newAutoClock()},
	})
	require.NoError(t, err)
	var calls atomic.Int32
	_, err = Do(context.Background(), p, func(ctx context.Context) (int, error) {
		calls.Add(1)
		return blockUntilDone(ctx)
	})
	assert.Equal(t, int32(1), calls.Load(), "the timeout bounds all attempts")
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "llm", te.Message)
	var re *RetryError
	assert.ErrorAs(t, err, &re, "the retry error is wrapped")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int64(1), collect(t, reader)["perfkit.resilience.timeouts"])

	roomy, err := NewPipeline(PipelineConfig{Timeout: time.Hour, MeterProvider: mp})
	require.NoError(t, err)
	_, err = Do(context.Background(), roomy, fail)
	assert.Same(t, errBoom, err, "a failure before the deadline is not a timeout")
	assert.Equal(t, int64(1), collect(t, reader)["perfkit.resilience.timeouts"], "and is not counted as one")
}

func TestPipelineRejectionsNotBreakerFailures(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{
		Breaker:  &BreakerConfig{ConsecutiveFailures: 1},
		Bulkhead: &BulkheadConfig{MaxConcurrent: 1},
	})
	require.NoError(t, err)
	release := hold(t, p.Bulkhead())
	defer release()
	_, err = Do(context.Background(), p, okCall)
	assert.ErrorIs(t, err, ErrBulkheadFull)
	assert.Equal(t, StateClosed, p.Breaker().State())
}

func TestPipelineBulkheadOutsideRateLimit(t *testing.T) {
	t.Parallel()
	clk := newManualClock()
	p, err := NewPipeline(PipelineConfig{
		Bulkhead:  &BulkheadConfig{MaxConcurrent: 1},
		RateLimit: &RateLimitConfig{Limit: 1, Per: time.Second, MaxWait: time.Second},
		Clock:     clk,
	})
	require.NoError(t, err)
	_, err = Do(context.Background(), p, okCall)
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() { _, err := Do(context.Background(), p, okCall); res <- err }()
	<-clk.Created // waiting for a token ...
	assert.Equal(t, 1, p.Bulkhead().InFlight(), "... while holding the bulkhead slot")
	_, err = Do(context.Background(), p, okCall)
	assert.ErrorIs(t, err, ErrBulkheadFull)
	clk.Advance(time.Second)
	assert.NoError(t, <-res)
}

func TestPipelineRetriesRateLimitAfterDelay(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	var delays []time.Duration
	p, err := NewPipeline(PipelineConfig{
		Retry: &RetryConfig{OnRetry: func(_ context.Context, _ int, _ error, d time.Duration) {
			delays = append(delays, d)
		}},
		RateLimit: &RateLimitConfig{Limit: 1, Per: time.Second},
		Clock:     clk,
	})
	require.NoError(t, err)
	for range 2 {
		_, err = Do(context.Background(), p, okCall)
		require.NoError(t, err)
	}
	assert.Equal(t, []time.Duration{time.Second}, delays, "the second call waited its RetryAfter")
}

func TestWrap1(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{Retry: &RetryConfig{Clock: newAutoClock()}})
	require.NoError(t, err)
	var calls atomic.Int32
	fn := Wrap1(p, func(_ context.Context, s string) (int, error) {
		if calls.Add(1) == 1 {
			return 0, errBoom
		}
		return len(s), nil
	})
	v, err := fn(context.Background(), "four")
	require.NoError(t, err)
	assert.Equal(t, 4, v)

	v, err = Wrap(p, okCall)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, v)
}

func TestEmptyPipeline(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{})
	require.NoError(t, err)
	_, err = Do(context.Background(), p, fail)
	assert.Same(t, errBoom, err)
	assert.Nil(t, p.Breaker())
	assert.Nil(t, p.Bulkhead())
	assert.Nil(t, p.RateLimiter())
}

func TestNewPipelineValidates(t *testing.T) {
	t.Parallel()
	for _, p := range []PipelineConfig{
		{Timeout: -1},
		{Retry: &RetryConfig{MaxAttempts: -1}},
		{Retry: &RetryConfig{Jitter: 9}},
		{Breaker: &BreakerConfig{FailureRatio: 2}},
		{Bulkhead: &BulkheadConfig{MaxConcurrent: -1}},
		{RateLimit: &RateLimitConfig{Limit: -1}},
	} {
		_, err := NewPipeline(p)
		assert.Error(t, err, "%+v", p)
	}
}

func TestPresets(t *testing.T) {
	t.Parallel()
	o := OpenAI()
	assert.Equal(t, 30*time.Second, o.Timeout)
	assert.Equal(t, 0.5, o.Breaker.FailureRatio)
	assert.Equal(t, 60*time.Second, o.Breaker.OpenTimeout)
	assert.Equal(t, 100, o.RateLimit.Limit)
	assert.Equal(t, time.Minute, o.RateLimit.Per)
	assert.Equal(t, 10, o.Bulkhead.MaxConcurrent)
	assert.Equal(t, 4, o.Retry.MaxAttempts, "3 retries")
	assert.Equal(t, time.Second, o.Retry.BaseDelay)
	assert.Equal(t, 10*time.Second, o.Retry.MaxDelay)
	assert.Equal(t, JitterFull, o.Retry.Jitter)

	o.Retry.MaxAttempts = 9
	assert.Equal(t, 4, OpenAI().Retry.MaxAttempts, "presets are fresh values")

	for _, p := range []PipelineConfig{OpenAI(), Twilio(), Webhook()} {
		_, err := NewPipeline(p)
		assert.NoError(t, err, p.Name)
	}
}

func TestPipelineSharedBreaker(t *testing.T) {
	t.Parallel()
	hosts, err := NewBreakers(BreakerConfig{ConsecutiveFailures: 1}, 0)
	require.NoError(t, err)
	cb := hosts.Get("api.example")
	p1, err := NewPipeline(PipelineConfig{CircuitBreaker: cb, Breaker: &BreakerConfig{ConsecutiveFailures: 100}})
	require.NoError(t, err)
	p2, err := NewPipeline(PipelineConfig{CircuitBreaker: cb})
	require.NoError(t, err)
	assert.Same(t, cb, p1.Breaker())
	_, _ = Do(context.Background(), p1, fail)
	_, err = Do(context.Background(), p2, okCall)
	assert.ErrorIs(t, err, ErrOpen, "the breaker tripped through p1 guards p2")
}

func TestPipelineConcurrent(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{
		Timeout:   time.Minute,
		Retry:     &RetryConfig{MaxAttempts: 3, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond},
		Breaker:   &BreakerConfig{FailureRatio: 0.9, MinRequests: 50, OpenTimeout: time.Millisecond},
		Bulkhead:  &BulkheadConfig{MaxConcurrent: 4, MaxQueue: 1000},
		RateLimit: &RateLimitConfig{Limit: 1 << 20},
	})
	require.NoError(t, err)
	var calls atomic.Int32
	fn := Wrap1(p, func(_ context.Context, i int) (int, error) {
		if calls.Add(1)%3 == 0 {
			return 0, errBoom
		}
		return i, nil
	})
	var wg sync.WaitGroup
	var ok, failed atomic.Int32
	for i := range 200 {
		wg.Go(func() {
			v, err := fn(context.Background(), i)
			if err != nil {
				failed.Add(1)
				return
			}
			if v == i {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(200), ok.Load()+failed.Load())
	assert.Positive(t, ok.Load())
	assert.Equal(t, 0, p.Bulkhead().InFlight(), "every slot released")
	assert.Equal(t, 0, p.Bulkhead().Queued())
}
