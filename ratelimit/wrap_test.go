package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type order struct{ User string }

func TestWrap(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "calls", Limit: ratelimit.PerHour(2)}, 0)
	require.NoError(t, err)
	calls := 0
	fn := ratelimit.Wrap(l, "svc", func(context.Context) (int, error) { calls++; return calls, nil })
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		v, err := fn(ctx)
		require.NoError(t, err)
		assert.Equal(t, i, v)
	}
	_, err = fn(ctx)
	assert.ErrorIs(t, err, ratelimit.ErrLimited)
	var le *ratelimit.LimitedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "calls", le.Tier)
	assert.InDelta(t, float64(30*time.Minute), float64(le.RetryAfter()), float64(time.Second))
	assert.Equal(t, 2, calls, "fn not called when limited")
	assert.Contains(t, err.Error(), `ratelimit: limited by "calls"; retry after`)
}

func TestWrap1(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "orders", Limit: ratelimit.PerHour(1)}, 0)
	require.NoError(t, err)
	place := ratelimit.Wrap1(l, func(o order) string { return o.User }, func(_ context.Context, o order) (string, error) {
		return "placed for " + o.User, nil
	})
	ctx := context.Background()
	tests := []struct {
		user    string
		limited bool
	}{{"ann", false}, {"bob", false}, {"ann", true}}
	for _, tt := range tests {
		_, err := place(ctx, order{tt.user})
		assert.Equal(t, tt.limited, errors.Is(err, ratelimit.ErrLimited), tt.user)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "w", Limit: ratelimit.Per(1, 20*time.Millisecond)}, 0)
	require.NoError(t, err)
	fn := ratelimit.WrapWait(l, "k", func(context.Context) (bool, error) { return true, nil })
	ctx := context.Background()
	start := time.Now()
	for range 3 {
		ok, err := fn(ctx)
		require.NoError(t, err)
		assert.True(t, ok)
	}
	assert.GreaterOrEqual(t, time.Since(start), 35*time.Millisecond, "third call waited for two emission intervals")

	// a wait longer than the deadline fails at once with ErrLimited
	slow, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "s", Limit: ratelimit.PerHour(1)}, 0)
	require.NoError(t, err)
	require.NoError(t, ratelimit.Wait(ctx, slow, "k"))
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	assert.ErrorIs(t, ratelimit.Wait(dctx, slow, "k"), ratelimit.ErrLimited)

	// cancellation ends the wait
	cctx, cancel2 := context.WithCancel(ctx)
	time.AfterFunc(10*time.Millisecond, cancel2)
	wk := ratelimit.WrapWait1(slow, func(s string) string { return s }, func(context.Context, string) (int, error) { return 1, nil })
	_, err = wk(cctx, "k")
	assert.ErrorIs(t, err, context.Canceled)
}
