package resilience

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFallback(t *testing.T) {
	t.Parallel()
	v, err := FallbackValue(fail, 7)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, v)

	v, err = FallbackValue(okCall, 7)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, v, "no fallback on success")

	onlyOpen := func(_ context.Context, err error) (int, error) {
		if errors.Is(err, ErrOpen) {
			return -1, nil
		}
		return 0, err
	}
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1})
	require.NoError(t, err)
	fn := Fallback(Breaker(cb, fail), onlyOpen)
	_, err = fn(context.Background())
	assert.ErrorIs(t, err, errBoom, "a plain failure passes through")
	v, err = fn(context.Background())
	require.NoError(t, err)
	assert.Equal(t, -1, v, "open breaker falls back")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = FallbackValue(blockUntilDone, 7)(ctx)
	assert.ErrorIs(t, err, context.Canceled, "no fallback once the caller has gone")
}
