package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateLimitReject(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	rl, err := NewRateLimiter(RateLimitConfig{Name: "api", Limit: 2, Per: time.Second, Clock: clk})
	require.NoError(t, err)
	fn := Throttle(rl, okCall)
	for range 2 {
		_, err := fn(context.Background())
		require.NoError(t, err)
	}
	_, err = fn(context.Background())
	require.ErrorIs(t, err, ErrRateLimited)
	var rle *RateLimitError
	require.ErrorAs(t, err, &rle)
	assert.Equal(t, 500*time.Millisecond, rle.RetryAfter())
	assert.Equal(t, "resilience: rate limited, retry after 500ms (api)", err.Error())
	assert.Empty(t, clk.Sleeps(), "reject mode never waits")

	clk.Advance(500 * time.Millisecond)
	_, err = fn(context.Background())
	assert.NoError(t, err, "a token is back after 500ms")
}

func TestRateLimitWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxWait    time.Duration
		deadline   time.Duration
		wantErr    error
		wantSleeps []time.Duration
	}{
		{"waits for token", time.Second, 0, nil, []time.Duration{500 * time.Millisecond}},
		{"wait longer than MaxWait", 100 * time.Millisecond, 0, ErrRateLimited, nil},
		{"wait past deadline", time.Second, 200 * time.Millisecond, ErrRateLimited, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newAutoClock()
			rl, err := NewRateLimiter(RateLimitConfig{Limit: 2, Per: time.Second, MaxWait: tt.maxWait, Clock: clk})
			require.NoError(t, err)
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clk.Now().Add(tt.deadline))
				defer cancel()
			}
			for range 2 {
				require.NoError(t, rl.Do(ctx, func(context.Context) error { return nil }))
			}
			err = rl.Do(ctx, func(context.Context) error { return nil })
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Equal(t, tt.wantSleeps, clk.Sleeps())
		})
	}
}

func TestRateLimitDefaults(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	rl, err := NewRateLimiter(RateLimitConfig{Clock: clk})
	require.NoError(t, err)
	allowed := 0
	for range 150 {
		if rl.Do(context.Background(), func(context.Context) error { return nil }) == nil {
			allowed++
		}
	}
	assert.Equal(t, 100, allowed, "default 100 per second with burst 100")
	for _, c := range []RateLimitConfig{{Limit: -1}, {Per: -1}, {Burst: -1}, {MaxWait: -1}} {
		_, err := NewRateLimiter(c)
		assert.Error(t, err, "%+v", c)
	}
}

func TestRateLimitWaitCanceled(t *testing.T) {
	t.Parallel()
	clk := newManualClock()
	rl, err := NewRateLimiter(RateLimitConfig{Limit: 1, Per: time.Second, MaxWait: time.Second, Clock: clk})
	require.NoError(t, err)
	require.NoError(t, rl.Do(context.Background(), func(context.Context) error { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- rl.Do(ctx, func(context.Context) error { return nil }) }()
	require.Equal(t, time.Second, <-clk.Created)
	cancel()
	assert.ErrorIs(t, <-res, context.Canceled)
	clk.Advance(time.Second)
	assert.NoError(t, rl.Do(context.Background(), func(context.Context) error { return nil }),
		"the canceled wait gave its token back")
}
