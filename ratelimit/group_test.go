package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestGroupLocalTiers: without Redis a Group chains local limiters; the
// tightest tier binds and names itself in the result.
func TestGroupLocalTiers(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	wide := ratelimit.Tier{Name: "wide", Limit: ratelimit.PerHour(10)}
	tight := ratelimit.Tier{Name: "tight", Limit: ratelimit.PerHour(3)}
	l, err := g.Limiter(wide, tight)
	require.NoError(t, err)
	assert.Equal(t, []ratelimit.Tier{wide, tight}, l.Tiers())
	ctx := context.Background()
	tests := []struct {
		allowed bool
		policy  string
		remain  int
	}{
		{true, "tight", 2}, {true, "tight", 1}, {true, "tight", 0}, {false, "tight", 0},
	}
	for i, tt := range tests {
		r, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, tt.allowed, r.Allowed, "request %d", i)
		assert.Equal(t, tt.policy, r.Tier, "request %d", i)
		assert.Equal(t, tt.remain, r.Remaining, "request %d", i)
	}
	d, err := g.Limiter()
	require.NoError(t, err)
	assert.Equal(t, "api", d.Tiers()[0].Name, "no tiers means API")
}

// TestRedisMixedPoliciesDown: with Redis down, one fail-closed tier among
// fail-open ones denies the whole decision with ErrUnavailable; the Redis
// latency histogram records the failed round trips.
func TestRedisMixedPoliciesDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	rd := sdkmetric.NewManualReader()
	tiers := ratelimit.Tiers()
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, Logger: quiet(), RedisTimeout: time.Second,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))}, tiers.Global, tiers.Auth)
	require.NoError(t, err)
	ctx := context.Background()
	r, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	srv.Kill()
	r, err = l.Allow(ctx, "k")
	assert.ErrorIs(t, err, ratelimit.ErrUnavailable)
	assert.False(t, r.Allowed)
	assert.Equal(t, "auth", r.Tier)

	var rm metricdata.ResourceMetrics
	require.NoError(t, rd.Collect(ctx, &rm))
	var got []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "perfkit.ratelimit.redis.duration" {
				assert.Equal(t, "s", m.Unit)
				for _, dp := range h.DataPoints {
					res, _ := dp.Attributes.Value("result")
					got = append(got, res.AsString())
				}
			}
		}
	}
	require.Len(t, got, 2, "Redis latency recorded by result: %v", got)
	assert.Contains(t, got, "ok")
	assert.Subset(t, []string{"ok", "error", "timeout"}, got, "a killed Redis: refused (error) or go-redis's retries ran out the deadline (timeout)")
}

func TestRedisConfigErrors(t *testing.T) {
	t.Parallel()
	c, _ := sharedRedis(t)
	api := ratelimit.Tiers().API
	api2 := api
	api2.Limit = ratelimit.PerMinute(61)
	_, err := ratelimit.NewRedis(ratelimit.Config{Redis: c}, api, api2)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "a tier name with two definitions")
	_, err = ratelimit.NewRedis(ratelimit.Config{Redis: c}, ratelimit.Tier{Name: "x", Limit: ratelimit.PerSecond(1), Algorithm: 9})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "unknown algorithm")
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c})
	require.NoError(t, err)
	_, err = l.AllowN(context.Background(), "k", 61)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidN)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Allow(ctx, "k")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = l.AllowTiers(context.Background(), "k", 1, nil)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
}

// TestGroupSharesTiers: two routes limited by Global + their own tier share
// one Global quota; a tier name with two definitions is refused.
func TestGroupSharesTiers(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	global := ratelimit.Tier{Name: "global", Limit: ratelimit.PerHour(3)}
	a, err := g.Limiter(global, ratelimit.Tier{Name: "a", Limit: ratelimit.PerHour(10)})
	require.NoError(t, err)
	b, err := g.Limiter(global, ratelimit.Tier{Name: "b", Limit: ratelimit.PerHour(10)})
	require.NoError(t, err)
	ctx := context.Background()
	var allowed []bool
	for _, l := range []ratelimit.Limiter{a, b, a, b} {
		r, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		allowed = append(allowed, r.Allowed)
	}
	assert.Equal(t, []bool{true, true, true, false}, allowed, "Global 3/h shared by both routes")

	_, err = g.Limiter(ratelimit.Tier{Name: "global", Limit: ratelimit.PerHour(4)})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
}

// TestGroupLocalAllOrNothing: a request the tighter tier denies costs the
// shared tier nothing.
func TestGroupLocalAllOrNothing(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	global := ratelimit.Tier{Name: "global", Limit: ratelimit.PerHour(5)}
	auth, err := g.Limiter(global, ratelimit.Tier{Name: "auth", Limit: ratelimit.PerHour(1)})
	require.NoError(t, err)
	api, err := g.Limiter(global)
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 4 {
		r, err := auth.Allow(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, i == 0, r.Allowed, "auth request %d", i)
	}
	r, err := api.Allow(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 3, r.Remaining, "global counted only the allowed auth request")
}
