package resilience

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parse is a one-argument callee: it fails for "bad" and counts its calls.
type parse struct{ calls atomic.Int32 }

func (p *parse) call(_ context.Context, s string) (int, error) {
	p.calls.Add(1)
	if s == "bad" {
		return 0, errBoom
	}
	return strconv.Atoi(s)
}

func TestBreaker1(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 2, MeterProvider: noopProvider()})
	require.NoError(t, err)
	var p parse
	fn := Breaker1(cb, p.call)
	v, err := fn(context.Background(), "42")
	require.NoError(t, err)
	assert.Equal(t, 42, v, "the argument reaches the callee")
	for range 2 {
		_, err = fn(context.Background(), "bad")
		assert.ErrorIs(t, err, errBoom)
	}
	assert.Equal(t, StateOpen, cb.State())
	_, err = fn(context.Background(), "7")
	assert.ErrorIs(t, err, ErrOpen)
	assert.Equal(t, int32(3), p.calls.Load(), "an open breaker does not call fn")
}

func TestIsolate1(t *testing.T) {
	t.Parallel()
	bh, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MeterProvider: noopProvider()})
	require.NoError(t, err)
	held, release := make(chan struct{}), make(chan struct{})
	fn := Isolate1(bh, func(_ context.Context, s string) (string, error) {
		if s == "hold" {
			close(held)
			<-release
		}
		return "got " + s, nil
	})
	done := make(chan struct{})
	go func() { defer close(done); _, _ = fn(context.Background(), "hold") }()
	<-held
	_, err = fn(context.Background(), "x")
	assert.ErrorIs(t, err, ErrBulkheadFull, "the slot is taken")
	close(release)
	<-done
	v, err := fn(context.Background(), "x")
	require.NoError(t, err)
	assert.Equal(t, "got x", v)
}

func TestThrottle1(t *testing.T) {
	t.Parallel()
	rl, err := NewRateLimiter(RateLimitConfig{Limit: 1, Per: time.Hour, Burst: 1, MeterProvider: noopProvider()})
	require.NoError(t, err)
	var p parse
	fn := Throttle1(rl, p.call)
	v, err := fn(context.Background(), "5")
	require.NoError(t, err)
	assert.Equal(t, 5, v)
	_, err = fn(context.Background(), "6")
	var rle *RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.Positive(t, rle.RetryAfter())
	assert.Equal(t, int32(1), p.calls.Load(), "a rejected call does not reach fn")
}

func TestTimeoutMsg1(t *testing.T) {
	t.Parallel()
	fn := TimeoutMsg1(time.Millisecond, "parser too slow", func(ctx context.Context, s string) (int, error) {
		if s == "slow" {
			return blockUntilDone(ctx)
		}
		return len(s), nil
	})
	v, err := fn(context.Background(), "abc")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	_, err = fn(context.Background(), "slow")
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "parser too slow", te.Message)
	assert.Equal(t, time.Millisecond, te.After)

	same := TimeoutMsg1(0, "unused", (&parse{}).call)
	v, err = same(context.Background(), "9")
	require.NoError(t, err)
	assert.Equal(t, 9, v, "d <= 0 calls fn unchanged")
}

func TestFallback1(t *testing.T) {
	t.Parallel()
	var p parse
	fn := Fallback1(p.call, func(_ context.Context, s string, err error) (int, error) {
		if errors.Is(err, errBoom) {
			return -len(s), nil
		}
		return 0, err
	})
	v, err := fn(context.Background(), "12")
	require.NoError(t, err)
	assert.Equal(t, 12, v, "no fallback on success")
	v, err = fn(context.Background(), "bad")
	require.NoError(t, err)
	assert.Equal(t, -3, v, "the fallback gets the argument and the error")
	_, err = fn(context.Background(), "x")
	var ne *strconv.NumError
	assert.ErrorAs(t, err, &ne, "the fallback may pass the error on")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = FallbackValue1(func(ctx context.Context, _ string) (int, error) { return blockUntilDone(ctx) }, 7)(ctx, "a")
	assert.ErrorIs(t, err, context.Canceled, "no fallback once the caller has gone")
}

func TestFallbackValue1(t *testing.T) {
	t.Parallel()
	var p parse
	fn := FallbackValue1(p.call, 7)
	v, err := fn(context.Background(), "bad")
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	v, err = fn(context.Background(), "3")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
}

func TestInvalidConfigWrapsErrInvalidConfig(t *testing.T) {
	t.Parallel()
	mp := noopProvider()
	errs := map[string]error{}
	_, errs["NewPipeline"] = NewPipeline(PipelineConfig{Timeout: -1})
	_, errs["NewRetrier"] = NewRetrier(RetryConfig{MaxAttempts: -1})
	_, errs["NewCircuitBreaker ConsecutiveFailures"] = NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: -1, MeterProvider: mp})
	_, errs["NewCircuitBreaker MinRequests"] = NewCircuitBreaker(BreakerConfig{MinRequests: -1, MeterProvider: mp})
	_, errs["NewTwoStepBreaker HalfOpenProbes"] = NewTwoStepBreaker(BreakerConfig{HalfOpenProbes: -1, MeterProvider: mp})
	_, errs["NewCircuitBreaker ratio"] = NewCircuitBreaker(BreakerConfig{FailureRatio: 2, MeterProvider: mp})
	_, errs["NewBreakers"] = NewBreakers(BreakerConfig{}, -1)
	_, errs["NewBulkhead"] = NewBulkhead(BulkheadConfig{MaxConcurrent: -1})
	_, errs["NewRateLimiter"] = NewRateLimiter(RateLimitConfig{Limit: -1})
	_, errs["NewBudget"] = NewBudget(0, 10)
	_, errs["NewPipeline breaker"] = NewPipeline(PipelineConfig{Breaker: &BreakerConfig{HalfOpenProbes: -2}})
	for name, err := range errs {
		assert.ErrorIs(t, err, ErrInvalidConfig, name)
		if err != nil {
			assert.Regexp(t, `^resilience: invalid config: `, err.Error(), name)
		}
	}
	if strconv.IntSize == 64 {
		big := int64(1) << 40
		_, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: int(big), MeterProvider: mp})
		assert.ErrorIs(t, err, ErrInvalidConfig, "a count gobreaker cannot hold")
	}
}
