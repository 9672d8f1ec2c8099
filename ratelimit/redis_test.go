package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedisExactAcrossInstances: 8 limiters on 8 clients fire 100 requests
// each at one key with a limit of 100: exactly 100 pass, whatever the
// algorithm.
func TestRedisExactAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, algo := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow, ratelimit.FixedWindow} {
		t.Run(algo.String(), func(t *testing.T) {
			t.Parallel()
			_, prefix := sharedRedis(t)
			tier := ratelimit.Tier{Name: "exact", Limit: ratelimit.PerHour(100), Algorithm: algo}
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				c, _ := sharedRedis(t)
				l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Prefix: prefix, Timeout: 5 * time.Second}, tier)
				require.NoError(t, err)
				for range 100 {
					wg.Go(func() {
						r, err := l.Allow(context.Background(), "client")
						assert.NoError(t, err)
						if r.Allowed {
							allowed.Add(1)
						}
					})
				}
			}
			wg.Wait()
			assert.Equal(t, int64(100), allowed.Load(), "allowed of 800 with limit 100")
		})
	}
}

func TestRedisResultFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		algo     ratelimit.Algorithm
		retryMin time.Duration
		retryMax time.Duration
		resetMin time.Duration
	}{
		{ratelimit.GCRA, 9 * time.Second, 10 * time.Second, 50 * time.Second},
		{ratelimit.SlidingWindow, time.Millisecond, 2 * time.Minute, 0},
		{ratelimit.FixedWindow, time.Millisecond, time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.algo.String(), func(t *testing.T) {
			t.Parallel()
			c, prefix := sharedRedis(t)
			l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Prefix: prefix, Timeout: time.Second},
				ratelimit.Tier{Name: "f", Limit: ratelimit.PerMinute(6), Algorithm: tt.algo})
			require.NoError(t, err)
			ctx := context.Background()
			r, err := l.AllowN(ctx, "k", 2)
			require.NoError(t, err)
			assert.Equal(t, ratelimit.Result{Allowed: true, Limit: 6, Remaining: 4, ResetAfter: r.ResetAfter, Policy: "f"}, r)
			r, err = l.AllowN(ctx, "k", 4)
			require.NoError(t, err)
			assert.True(t, r.Allowed)
			assert.Equal(t, 0, r.Remaining)
			r, err = l.Allow(ctx, "k")
			require.NoError(t, err)
			assert.False(t, r.Allowed)
			assert.Equal(t, 0, r.Remaining)
			assert.GreaterOrEqual(t, r.RetryAfter, tt.retryMin)
			assert.LessOrEqual(t, r.RetryAfter, tt.retryMax)
			assert.GreaterOrEqual(t, r.ResetAfter, tt.resetMin)
			_, err = l.AllowN(ctx, "k", 7)
			assert.ErrorIs(t, err, ratelimit.ErrInvalidN)
		})
	}
}

// TestRedisWindowRollOver uses short real windows: after the window (or the
// emission interval) passes, requests are allowed again.
func TestRedisWindowRollOver(t *testing.T) {
	t.Parallel()
	for _, algo := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow, ratelimit.FixedWindow} {
		t.Run(algo.String(), func(t *testing.T) {
			t.Parallel()
			c, prefix := sharedRedis(t)
			l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Prefix: prefix, Timeout: time.Second},
				ratelimit.Tier{Name: "w", Limit: ratelimit.Per(3, 200*time.Millisecond), Algorithm: algo})
			require.NoError(t, err)
			ctx := context.Background()
			for range 3 {
				r, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				require.True(t, r.Allowed)
			}
			r, err := l.Allow(ctx, "k")
			require.NoError(t, err)
			require.False(t, r.Allowed)
			require.Positive(t, r.RetryAfter)
			require.LessOrEqual(t, r.RetryAfter, 400*time.Millisecond)
			time.Sleep(r.RetryAfter + 5*time.Millisecond)
			r, err = l.Allow(ctx, "k")
			require.NoError(t, err)
			assert.True(t, r.Allowed, "allowed after waiting RetryAfter")
		})
	}
}

// TestRedisMultiTierAllOrNothing: Global + Auth in one call; a denial by
// Auth costs nothing from Global. A tier of another algorithm runs in its own
// script of the same pipeline and is not rolled back.
func TestRedisMultiTierAllOrNothing(t *testing.T) {
	t.Parallel()
	c, prefix := sharedRedis(t)
	global := ratelimit.Tier{Name: "global", Limit: ratelimit.PerHour(10)}
	auth := ratelimit.Tier{Name: "auth", Limit: ratelimit.PerHour(2)}
	win := ratelimit.Tier{Name: "win", Limit: ratelimit.PerHour(10), Algorithm: ratelimit.SlidingWindow}
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Prefix: prefix, Timeout: time.Second}, global, auth, win)
	require.NoError(t, err)
	ctx := context.Background()
	out := make([]ratelimit.Result, 3)
	for i := range 5 {
		r, err := l.AllowTiers(ctx, "ip", 1, out)
		require.NoError(t, err)
		assert.Equal(t, i < 2, r.Allowed, "request %d", i)
		if !r.Allowed {
			assert.Equal(t, "auth", r.Policy)
		}
	}
	assert.Equal(t, 8, out[0].Remaining, "global remaining after 2 allowed and 3 denied")
	assert.Equal(t, 5, out[2].Remaining, "sliding tier (own script) counted all 5")
	// the global key alone sees only the two allowed requests
	g, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Prefix: prefix, Timeout: time.Second}, global)
	require.NoError(t, err)
	r, err := g.Allow(ctx, "ip")
	require.NoError(t, err)
	assert.Equal(t, 7, r.Remaining)
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	tiers := ratelimit.Tiers()
	win := tiers.API
	win.Name, win.Algorithm = "apiwin", ratelimit.SlidingWindow
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Timeout: time.Second}, tiers.Global, tiers.Auth, win)
	require.NoError(t, err)
	ctx := context.Background()
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "2001:db8::/64"} {
		for i := range 6 {
			r, err := l.Allow(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, i < 5, r.Allowed, "key %s request %d", key, i)
		}
	}
}

// TestRedisKilledFallsBack kills Redis mid-test: decisions fall back within
// the deadline (no request waits > 100 ms), fail-open tiers use the local
// limit ÷ instances, fail-closed tiers deny with ErrUnavailable, and limits
// come back to Redis once it returns.
func TestRedisKilledFallsBack(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	open := ratelimit.Tier{Name: "open", Limit: ratelimit.PerHour(40)}
	closed := ratelimit.Tier{Name: "closed", Limit: ratelimit.PerHour(40), OnFailure: ratelimit.FailClosed}
	g, err := ratelimit.New(ratelimit.Config{Redis: c, Instances: 4, BreakerOpen: 200 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	lo, err := g.Limiter(open)
	require.NoError(t, err)
	lc, err := g.Limiter(closed)
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		r, err := lo.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, r.Allowed)
	}

	srv.Kill()
	slowest := time.Duration(0)
	allowedOpen := 0
	for i := range 30 {
		start := time.Now()
		r, err := lo.Allow(ctx, "k2")
		slowest = max(slowest, time.Since(start))
		require.NoError(t, err, "fail-open tier returns no error, request %d", i)
		if r.Allowed {
			allowedOpen++
		}
		start = time.Now()
		rc, err := lc.Allow(ctx, "k")
		slowest = max(slowest, time.Since(start))
		assert.ErrorIs(t, err, ratelimit.ErrUnavailable)
		assert.False(t, rc.Allowed)
		assert.Positive(t, rc.RetryAfter)
	}
	assert.Equal(t, 10, allowedOpen, "fail-open allows the local share 40/4")
	assert.Less(t, slowest, 100*time.Millisecond, "slowest decision while Redis is down")

	srv.Restart()
	require.Eventually(t, func() bool {
		r, err := lc.Allow(ctx, "k")
		return err == nil && r.Allowed
	}, 5*time.Second, 50*time.Millisecond, "fail-closed tier allows again once Redis is back")
	r, err := lo.Allow(ctx, "k2")
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	assert.Equal(t, 39, r.Remaining, "a fresh Redis counts from zero again")
}

// TestRedisPausedHonoursDeadline freezes Redis: each decision gives up at
// the deadline and the breaker then skips Redis entirely.
func TestRedisPausedHonoursDeadline(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Timeout: 30 * time.Millisecond, BreakerOpen: time.Minute, Logger: quiet()})
	require.NoError(t, err)
	ctx := context.Background()
	_, err = l.Allow(ctx, "k")
	require.NoError(t, err)
	srv.Pause()
	defer srv.Resume()
	for i := range 10 {
		start := time.Now()
		r, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		assert.True(t, r.Allowed, "API tier fails open")
		assert.Less(t, time.Since(start), 100*time.Millisecond, "decision %d", i)
	}
}
