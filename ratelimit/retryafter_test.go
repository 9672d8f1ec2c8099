package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/servio/perfkit/ratelimit"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
)

// A *LimitedError is a resilience.RetryAfterer (the interface is structural:
// ratelimit does not import resilience).
var _ resilience.RetryAfterer = (*ratelimit.LimitedError)(nil)

// TestRetryWaitsLimiterRetryAfter: resilience.Retry around a limited call
// waits the limiter's retry-after before the next attempt instead of its
// own (here 1 ms) backoff, so a denied call is tried again once, when the
// limiter allows it, rather than hammering the limiter until attempts run
// out.
func TestRetryWaitsLimiterRetryAfter(t *testing.T) {
	t.Parallel()
	const period = 500 * time.Millisecond
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	l, err := g.Limiter(ratelimit.Tier{Name: "dep", Limit: ratelimit.Per(1, period)})
	require.NoError(t, err)
	var mu sync.Mutex
	var calls, attempts int
	var asked, waited []time.Duration // the limiter's retry-after; Retry's delay
	call := ratelimit.Wrap(l, "k", func(context.Context) (int, error) { calls++; return calls, nil })
	attempt := func(ctx context.Context) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		v, err := call(ctx)
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			asked = append(asked, le.RetryAfter())
		}
		return v, err
	}
	ctx := context.Background()
	_, err = call(ctx) // uses the quota: the next call is denied for about a period
	require.NoError(t, err)

	retried := resilience.Retry(resilience.RetryConfig{
		MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Jitter: resilience.JitterNone,
		MaxRetryAfter: 2 * period, // above the limiter's retry-after, so Retry waits it
		OnRetry: func(_ context.Context, _ int, _ error, d time.Duration) {
			mu.Lock()
			waited = append(waited, d)
			mu.Unlock()
		},
		MeterProvider: noop.NewMeterProvider(), Logger: quiet(),
	}, attempt)
	start := time.Now()
	v, err := retried(ctx)
	elapsed := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, 2, v, "the retried call ran once, after the wait")
	assert.Equal(t, 2, attempts, "one denial, then one allowed attempt: no hammering")
	require.Len(t, asked, 1)
	assert.Positive(t, asked[0])
	assert.LessOrEqual(t, asked[0], period)
	assert.Equal(t, asked, waited, "Retry waited exactly the limiter's retry-after, not its 1 ms backoff")
	assert.GreaterOrEqual(t, elapsed, asked[0], "the call returned no earlier than the retry-after")
}

// TestRetryGivesUpOnLongRetryAfter: a retry-after beyond the policy's
// MaxRetryAfter ends retrying at once, with the limiter's delay reported,
// instead of retrying early into a certain denial.
func TestRetryGivesUpOnLongRetryAfter(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	l, err := g.Limiter(ratelimit.Tier{Name: "hourly", Limit: ratelimit.PerHour(1)})
	require.NoError(t, err)
	attempts := 0
	call := ratelimit.Wrap(l, "k", func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	_, err = call(ctx)
	require.NoError(t, err)
	_, err = resilience.Retry(resilience.RetryConfig{MaxAttempts: 5, MeterProvider: noop.NewMeterProvider(), Logger: quiet()},
		func(ctx context.Context) (int, error) { attempts++; return call(ctx) })(ctx)
	assert.Equal(t, 1, attempts, "no attempt before the limiter allows one")
	assert.ErrorIs(t, err, ratelimit.ErrLimited)
	var re *resilience.RetryError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, resilience.ErrRetryAfterTooLong)
	assert.InDelta(t, float64(time.Hour), float64(re.ServerDelay), float64(time.Minute), "the limiter's retry-after is reported")
}

// TestBreakerDoesNotCountDenials: a circuit breaker around a limited call
// neither opens nor counts failures however many calls the limiter denies
// (the dependency was never reached), while a real failure still counts.
func TestBreakerDoesNotCountDenials(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	l, err := g.Limiter(ratelimit.Tier{Name: "dep", Limit: ratelimit.Per(1, time.Hour)})
	require.NoError(t, err)
	cb, err := resilience.NewCircuitBreaker(resilience.BreakerConfig{Name: "dep", ConsecutiveFailures: 2,
		MeterProvider: noop.NewMeterProvider(), Logger: quiet()})
	require.NoError(t, err)
	fail := false
	call := resilience.Breaker(cb, ratelimit.Wrap(l, "k", func(context.Context) (int, error) {
		if fail {
			return 0, errors.New("dependency down")
		}
		return 1, nil
	}))
	ctx := context.Background()
	_, err = call(ctx)
	require.NoError(t, err)
	for range 10 {
		_, err = call(ctx)
		require.ErrorIs(t, err, ratelimit.ErrLimited)
	}
	assert.Equal(t, resilience.StateClosed, cb.State(), "denials must not open the breaker")
	assert.Zero(t, cb.Counts().ConsecutiveFailures, "denials must not count as failures")

	// A real failure of the dependency still counts.
	require.NoError(t, l.Reset(ctx, "k"))
	fail = true
	_, err = call(ctx)
	require.EqualError(t, err, "dependency down")
	assert.EqualValues(t, 1, cb.Counts().ConsecutiveFailures)
}
