package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
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
			rd := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
			for range 8 {
				c, _ := sharedRedis(t)
				l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: 5 * time.Second, MeterProvider: mp}, tier)
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
			assert.Empty(t, nonzero(counts(t, rd, "perfkit.ratelimit.fallbacks")), "every decision made on Redis, none by the local fallback")
			assert.Equal(t, int64(100), allowed.Load(), "allowed of 800 with limit 100")
		})
	}
}

func TestRedisResultFields(t *testing.T) {
	t.Parallel()
	// Six per minute, or per hour for the fixed window so the three calls
	// do not straddle a window boundary (a minute's would, once in 20,000
	// runs).
	tests := []struct {
		algo     ratelimit.Algorithm
		limit    ratelimit.Limit
		retryMin time.Duration
		retryMax time.Duration
		resetMin time.Duration
	}{
		{ratelimit.GCRA, ratelimit.PerMinute(6), 9 * time.Second, 10 * time.Second, 50 * time.Second},
		{ratelimit.SlidingWindow, ratelimit.PerMinute(6), time.Millisecond, 2 * time.Minute, 0},
		{ratelimit.FixedWindow, ratelimit.PerHour(6), time.Millisecond, time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.algo.String(), func(t *testing.T) {
			t.Parallel()
			c, prefix := sharedRedis(t)
			l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second},
				ratelimit.Tier{Name: "f", Limit: tt.limit, Algorithm: tt.algo})
			require.NoError(t, err)
			ctx := context.Background()
			r, err := l.AllowN(ctx, "k", 2)
			require.NoError(t, err)
			assert.Equal(t, ratelimit.Result{Allowed: true, Limit: 6, Remaining: 4, ResetAfter: r.ResetAfter, Tier: "f"}, r)
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
//
// Filling the quota and seeing the denial takes two round trips; a stall
// between them longer than the time the quota needs to regain one event (a
// third of the window, or the rest of a fixed window) lets the second
// through legitimately. Such a try says nothing and is repeated on a fresh
// key; every try that was fast enough must deny.
func TestRedisWindowRollOver(t *testing.T) {
	t.Parallel()
	const window = 200 * time.Millisecond
	for _, algo := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow, ratelimit.FixedWindow} {
		t.Run(algo.String(), func(t *testing.T) {
			t.Parallel()
			c, prefix := sharedRedis(t)
			l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second},
				ratelimit.Tier{Name: "w", Limit: ratelimit.Per(3, window), Algorithm: algo})
			require.NoError(t, err)
			ctx := context.Background()
			var denied ratelimit.Result
			var key string
			for try := 0; try < 10 && key == ""; try++ {
				k := "k" + strconv.Itoa(try)
				start := time.Now()
				fill, err := l.AllowN(ctx, k, 3)
				require.NoError(t, err)
				require.True(t, fill.Allowed, "a fresh key allows the whole burst")
				require.Zero(t, fill.Remaining)
				r, err := l.Allow(ctx, k)
				require.NoError(t, err)
				safe := window / 3 // GCRA and sliding window regain one event after a third
				if algo == ratelimit.FixedWindow {
					safe = min(safe, fill.ResetAfter) // the rest of the fill's window
				}
				if time.Since(start) >= safe {
					continue
				}
				require.False(t, r.Allowed, "try %d: denied right after the quota was used", try)
				denied, key = r, k
			}
			require.NotEmpty(t, key, "no try filled and checked the quota within a third of the window")
			require.Positive(t, denied.RetryAfter)
			require.LessOrEqual(t, denied.RetryAfter, 2*window)
			time.Sleep(denied.RetryAfter + 5*time.Millisecond)
			r, err := l.Allow(ctx, key)
			require.NoError(t, err)
			assert.True(t, r.Allowed, "allowed after waiting RetryAfter")
		})
	}
}

// TestRedisMultiTierAllOrNothing: Global + Auth in one call; a denial by
// Auth costs nothing from Global, nor from a tier of another algorithm: one
// script decides every tier.
func TestRedisMultiTierAllOrNothing(t *testing.T) {
	t.Parallel()
	c, prefix := sharedRedis(t)
	global := ratelimit.Tier{Name: "global", Limit: ratelimit.PerHour(10)}
	auth := ratelimit.Tier{Name: "auth", Limit: ratelimit.PerHour(2)}
	win := ratelimit.Tier{Name: "win", Limit: ratelimit.PerHour(10), Algorithm: ratelimit.SlidingWindow}
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second}, global, auth, win)
	require.NoError(t, err)
	ctx := context.Background()
	out := make([]ratelimit.Result, 3)
	for i := range 5 {
		r, err := l.AllowTiers(ctx, "ip", 1, out)
		require.NoError(t, err)
		assert.Equal(t, i < 2, r.Allowed, "request %d", i)
		if !r.Allowed {
			assert.Equal(t, "auth", r.Tier)
		}
	}
	assert.Equal(t, 8, out[0].Remaining, "global remaining after 2 allowed and 3 denied")
	assert.Equal(t, 8, out[2].Remaining, "sliding tier counted only the 2 allowed")
	// the global key alone sees only the two allowed requests
	g, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second}, global)
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
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, RedisTimeout: time.Second}, tiers.Global, tiers.Auth, win)
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
// the deadline (the default, DefaultRedisTimeout), fail-open tiers use the local
// limit ÷ instances, fail-closed tiers deny with ErrUnavailable, and limits
// come back to Redis once it returns.
//
// "Within the deadline" is proved by what the limiter controls, which a
// loaded CI machine cannot disturb: every Redis attempt runs under a
// deadline of at most Config.RedisTimeout, and once the breaker opens
// decisions stop trying Redis (at most one probe per BreakerOpenTimeout). Wall time only gets
// a sanity bound that a missing deadline (seconds) would break.
func TestRedisKilledFallsBack(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	hook := &attemptHook{}
	c.AddHook(hook)
	rd := sdkmetric.NewManualReader()
	open := ratelimit.Tier{Name: "open", Limit: ratelimit.PerHour(40)}
	closed := ratelimit.Tier{Name: "closed", Limit: ratelimit.PerHour(40), OnFailure: ratelimit.FailClosed}
	const breakerOpen, breakerFailures = 200 * time.Millisecond, ratelimit.DefaultBreakerConsecutiveFailures
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, Instances: 4, BreakerOpenTimeout: breakerOpen, Logger: quiet(),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))})
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
	assertBudgets(t, hook.take(), ratelimit.DefaultRedisTimeout)

	srv.Kill()
	down := time.Now()
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
	outage := time.Since(down)
	attempts := hook.take()
	assert.Equal(t, 10, allowedOpen, "fail-open allows the local share 40/4")
	assert.Equal(t, map[string]int64{"fail_open/open/": 30, "fail_closed/closed/": 30},
		counts(t, rd, "perfkit.ratelimit.fallbacks", "reason"), "every decision during the outage made by the failure policy")
	byReason := counts(t, rd, "perfkit.ratelimit.fallbacks", "policy", "tier")
	assert.Equal(t, int64(60-breakerFailures), byReason["breaker_open/"], "decisions that skipped Redis: %v", byReason)
	assert.Equal(t, int64(breakerFailures), byReason["error/"]+byReason["timeout/"],
		"decisions that tried the killed Redis (refused, or go-redis's retries ran out the deadline): %v", byReason)
	assertBudgets(t, attempts, ratelimit.DefaultRedisTimeout)
	// breakerFailures attempts open the breaker; after that one probe per
	// BreakerOpenTimeout at most, instead of one per decision (60).
	assert.GreaterOrEqual(t, decisions(attempts), breakerFailures, "attempts before the breaker opened")
	assert.LessOrEqual(t, decisions(attempts), breakerFailures+int(outage/breakerOpen),
		"Redis attempts in a %v outage with the breaker open", outage)
	assert.Less(t, slowest, time.Second, "slowest decision while Redis is down (sanity bound; the deadline is checked above)")

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
// the deadline, is counted as a timeout, and the breaker then skips Redis
// entirely. As above, the deadline and the number of attempts are asserted
// exactly (from the Group's counts: go-redis may spend a decision's budget
// on a connection handshake before the script's command starts); wall time
// gets a sanity bound that go-redis's 3 s ReadTimeout would break.
func TestRedisPausedHonoursDeadline(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	hook := &attemptHook{}
	c.AddHook(hook)
	const timeout = 30 * time.Millisecond
	rd := sdkmetric.NewManualReader()
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, RedisTimeout: timeout, BreakerOpenTimeout: time.Minute, Logger: quiet(),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))})
	require.NoError(t, err)
	l, err := g.Limiter()
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.ScriptLoad(ctx, ratelimit.DecideScript).Err())
	// one decision on Redis first (a loaded machine may need a few tries
	// within 30 ms); its success closes the breaker's count of failures
	require.Eventually(t, func() bool {
		_, err := l.Allow(ctx, "k")
		return err == nil && g.Stats().Redis == 1
	}, 10*time.Second, time.Millisecond)
	before := g.Stats()
	fbBefore := counts(t, rd, "perfkit.ratelimit.fallbacks", "policy", "tier")
	hook.take()
	srv.Pause()
	defer srv.Resume()
	const n, trip = 10, ratelimit.DefaultBreakerConsecutiveFailures
	for i := range n {
		start := time.Now()
		r, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		assert.True(t, r.Allowed, "API tier fails open")
		assert.Less(t, time.Since(start), time.Second, "decision %d (sanity bound)", i)
	}
	after := g.Stats()
	assert.Equal(t, ratelimit.Stats{Timeouts: trip, Rejected: n - trip}, ratelimit.Stats{Redis: after.Redis - before.Redis,
		Timeouts: after.Timeouts - before.Timeouts, Errors: after.Errors - before.Errors, Rejected: after.Rejected - before.Rejected},
		"the default 5 timeouts open the breaker; the other decisions skip Redis")
	fb := counts(t, rd, "perfkit.ratelimit.fallbacks", "policy", "tier")
	assert.Equal(t, int64(trip), fb["timeout/"]-fbBefore["timeout/"], "timeouts counted in perfkit.ratelimit.fallbacks")
	assert.Equal(t, int64(n-trip), fb["breaker_open/"]-fbBefore["breaker_open/"])
	attempts := hook.take()
	assert.LessOrEqual(t, decisions(attempts), trip, "no decision tries Redis once the breaker is open")
	assertBudgets(t, attempts, timeout)
}

// TestRedisFallbackAllOrNothing: with Redis down, a decision that one tier
// denies (locally, or by failing closed) uses none of the other tiers'
// local quota, as on Redis.
func TestRedisFallbackAllOrNothing(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, Logger: quiet(), BreakerOpenTimeout: time.Hour})
	require.NoError(t, err)
	wide := ratelimit.Tier{Name: "wide", Limit: ratelimit.PerHour(8)}
	narrow := ratelimit.Tier{Name: "narrow", Limit: ratelimit.PerHour(4)}
	closed := ratelimit.Tier{Name: "closed", Limit: ratelimit.PerHour(100), OnFailure: ratelimit.FailClosed}
	both, err := g.Limiter(wide, narrow)
	require.NoError(t, err)
	withClosed, err := g.Limiter(wide, closed)
	require.NoError(t, err)
	alone, err := g.Limiter(wide)
	require.NoError(t, err)
	srv.Kill()
	ctx := context.Background()
	for i := range 6 {
		r, err := both.Allow(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, i < 4, r.Allowed, "request %d", i)
	}
	for range 3 {
		r, err := withClosed.Allow(ctx, "k")
		require.ErrorIs(t, err, ratelimit.ErrUnavailable)
		assert.False(t, r.Allowed)
	}
	r, err := alone.Allow(ctx, "k")
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	assert.Equal(t, 3, r.Remaining, "wide counted only the 4 allowed decisions and this one")
}

// TestRedisNoScriptCountsOnce: on a Redis that does not know the script
// yet (a fresh or flushed script cache), the NOSCRIPT answer counts nothing
// and the script, loaded then, counts the request once in every tier.
func TestRedisNoScriptCountsOnce(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	auth := ratelimit.Tier{Name: "auth", Limit: ratelimit.PerHour(2)}
	win := ratelimit.Tier{Name: "win", Limit: ratelimit.PerHour(10), Algorithm: ratelimit.SlidingWindow}
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, RedisTimeout: time.Second}, auth, win)
	require.NoError(t, err)
	out := make([]ratelimit.Result, 2)
	r, err := l.AllowTiers(ctx, "ip", 1, out)
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	assert.Equal(t, 1, out[0].Remaining, "the GCRA tier must count the first request once, not again after NOSCRIPT")
	assert.Equal(t, 9, out[1].Remaining, "the sliding tier counts it once")
	r, err = l.AllowTiers(ctx, "ip", 1, out)
	require.NoError(t, err)
	assert.True(t, r.Allowed, "the second of 2 per hour is allowed")
}
