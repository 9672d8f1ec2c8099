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

	retried := resilience.Retry(resilience.RetryPolicy{
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
	_, err = resilience.Retry(resilience.RetryPolicy{MaxAttempts: 5, MeterProvider: noop.NewMeterProvider(), Logger: quiet()},
		func(ctx context.Context) (int, error) { attempts++; return call(ctx) })(ctx)
	assert.Equal(t, 1, attempts, "no attempt before the limiter allows one")
	assert.ErrorIs(t, err, ratelimit.ErrLimited)
	var re *resilience.RetryError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, resilience.ErrRetryAfterTooLong)
	assert.InDelta(t, float64(time.Hour), float64(re.ServerDelay), float64(time.Minute), "the limiter's retry-after is reported")
}
