package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPipelineAdaptive: a pipeline's adaptive stage refuses attempts over
// its limit with an *OverloadError that the breaker does not count and
// Retry retries after its RetryAfter; admitted attempts feed the limit and
// release their slot.
func TestPipelineAdaptive(t *testing.T) {
	clock := newAutoClock()
	p, err := NewPipeline(PipelineConfig{
		Name:          "llm",
		Retry:         &RetryConfig{MaxAttempts: 2, MaxRetryAfter: time.Minute},
		Breaker:       &BreakerConfig{ConsecutiveFailures: 1},
		Adaptive:      &AdaptiveConfig{InitialLimit: 2, MinLimit: 2, MaxLimit: 2, RetryAfter: 3 * time.Second},
		Clock:         clock,
		MeterProvider: noopProvider(),
	})
	require.NoError(t, err)
	l := p.AdaptiveLimiter()
	require.NotNil(t, l)
	t.Cleanup(func() { _ = l.Close() })
	assert.Equal(t, "llm.adaptive", l.Name())

	ctx := context.Background()
	held, err := l.Acquire(ctx, PriorityNormal) // Normal may use max(1, 75 % of 2) = 1
	require.NoError(t, err)
	calls := 0
	_, err = Do(ctx, p, func(context.Context) (int, error) { calls++; return 1, nil })
	var oe *OverloadError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "llm.adaptive", oe.Name)
	assert.Zero(t, calls, "a refused attempt never reaches fn")
	assert.Equal(t, StateClosed, p.Breaker().State(), "refusals are not breaker failures")
	assert.Equal(t, []time.Duration{3 * time.Second}, clock.Sleeps(), "Retry waited the refusal's RetryAfter")

	// A critical attempt gets in even now.
	v, err := Do(WithPriority(ctx, PriorityCritical), p, okCall)
	assert.Equal(t, 1, v)
	require.NoError(t, err)
	held.Release(nil)

	// A failure opens the breaker (1 consecutive failure): the retry is
	// refused by it, and the failed attempt's slot is free again.
	boom := errors.New("boom")
	_, err = Do(ctx, p, func(context.Context) (int, error) { return 0, boom })
	assert.ErrorIs(t, err, ErrOpen)
	assert.Equal(t, 0, l.InFlight(), "every attempt released its slot")
}

func TestPipelineAdaptiveDoesNotAllocate(t *testing.T) {
	p, err := NewPipeline(PipelineConfig{Retry: &RetryConfig{}, Breaker: &BreakerConfig{}, Adaptive: &AdaptiveConfig{}, MeterProvider: noopProvider()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.AdaptiveLimiter().Close() })
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = Do(ctx, p, okCall) }); n != 0 {
		t.Errorf("a pipeline call through the adaptive limiter allocates %v times, want 0", n)
	}
}

func TestPipelineAdaptiveValidates(t *testing.T) {
	_, err := NewPipeline(PipelineConfig{Adaptive: &AdaptiveConfig{MinLimit: -1}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}
