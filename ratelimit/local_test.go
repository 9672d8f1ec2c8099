package ratelimit_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newLocal(t *testing.T, l ratelimit.Limit, maxKeys int) *ratelimit.InMemory {
	t.Helper()
	lim, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "t", Limit: l}, maxKeys)
	require.NoError(t, err)
	return lim
}

// TestLocalRollOver drives the clock: a burst of 60, then one event per
// second, then the whole burst again after a minute of quiet.
func TestLocalRollOver(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerMinute(60), 0)
	for i := range 60 {
		r, err := l.AllowAt("k", t0, 1)
		require.NoError(t, err)
		require.True(t, r.Allowed, "burst event %d", i)
		assert.Equal(t, 59-i, r.Remaining)
	}
	r, err := l.AllowAt("k", t0, 1)
	require.NoError(t, err)
	assert.Equal(t, ratelimit.Result{Limit: 60, Remaining: 0, ResetAfter: time.Minute, RetryAfter: time.Second, Tier: "t"}, r)

	r, _ = l.AllowAt("k", t0.Add(999*time.Millisecond), 1)
	assert.False(t, r.Allowed, "just before one emission interval")
	assert.Equal(t, time.Millisecond, r.RetryAfter)
	r, _ = l.AllowAt("k", t0.Add(time.Second), 1)
	assert.True(t, r.Allowed, "one emission interval later")
	assert.Equal(t, 0, r.Remaining)

	r, _ = l.AllowAt("k", t0.Add(time.Second+time.Minute), 1)
	assert.True(t, r.Allowed)
	assert.Equal(t, 59, r.Remaining, "whole burst back after a quiet minute")
	assert.Equal(t, time.Second, r.ResetAfter)
}

func TestLocalAllowN(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerSecond(10).WithBurst(5), 0)
	tests := []struct {
		n       int
		allowed bool
		remain  int
		err     error
	}{
		{3, true, 2, nil},
		{3, false, 2, nil},
		{2, true, 0, nil},
		{0, false, 0, ratelimit.ErrInvalidN},
		{6, false, 0, ratelimit.ErrInvalidN},
	}
	for i, tt := range tests {
		r, err := l.AllowAt("k", t0, tt.n)
		assert.ErrorIs(t, err, tt.err, "step %d", i)
		assert.Equal(t, tt.allowed, r.Allowed, "step %d allowed", i)
		assert.Equal(t, tt.remain, r.Remaining, "step %d remaining", i)
	}
}

func TestLocalKeysIndependent(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerHour(1), 0)
	for _, k := range []string{"a", "b", "c"} {
		r, err := l.AllowAt(k, t0, 1)
		require.NoError(t, err)
		assert.True(t, r.Allowed, k)
	}
	r, _ := l.AllowAt("a", t0, 1)
	assert.False(t, r.Allowed)
}

// TestLocalConcurrentExact: 8 goroutines × 100 on one key with a burst of
// 100 over an hour: exactly 100 pass.
func TestLocalConcurrentExact(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerHour(100), 0)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if r, _ := l.Allow(context.Background(), "k"); r.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(100), allowed.Load())
}

// TestLocalMemoryBounded: a million distinct keys (a flood of client IPs)
// leave at most MaxKeys remembered and the heap about where it was.
func TestLocalMemoryBounded(t *testing.T) {
	const maxKeys = 10_000
	l := newLocal(t, ratelimit.PerMinute(60), maxKeys)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 0, 32)
	for i := range 1_000_000 {
		buf = strconv.AppendInt(append(buf[:0], "10.0."...), int64(i), 10)
		if _, err := l.AllowAt(string(buf), t0, 1); err != nil {
			t.Fatal(err)
		}
		if i%100_000 == 0 {
			assert.LessOrEqual(t, l.Len(), maxKeys+64, "keys remembered after %d distinct keys", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	assert.LessOrEqual(t, l.Len(), maxKeys+64, "keys remembered (MaxKeys rounded up to 64 shards)")
	assert.Positive(t, l.Evicted(), "in-use keys had to be evicted")
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	assert.Less(t, growth, int64(8<<20), "heap growth after 1M keys with MaxKeys 10k: %d bytes", growth)
	runtime.KeepAlive(l)
}

// TestLocalIdleKeysGoFirst: when a shard is full, keys whose quota is whole
// again are dropped without touching busy ones.
func TestLocalIdleKeysGoFirst(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerSecond(1), 64*4)
	for i := range 64 * 4 {
		_, _ = l.AllowAt("old"+strconv.Itoa(i), t0, 1)
	}
	later := t0.Add(time.Hour)
	for i := range 64 * 8 {
		_, _ = l.AllowAt("new"+strconv.Itoa(i), later, 1)
	}
	assert.LessOrEqual(t, l.Len(), 64*4)
}

// TestLocalConfigErrors: a Group without Redis rejects bad tiers and a
// negative MaxKeys with ErrInvalidConfig, and with no tiers limits by the
// API tier.
func TestLocalConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tier ratelimit.Tier
	}{
		{"zero rate", ratelimit.Tier{Name: "x", Limit: ratelimit.Limit{Period: time.Second}}},
		{"zero period", ratelimit.Tier{Name: "x", Limit: ratelimit.Limit{Rate: 1}}},
		{"too fast", ratelimit.Tier{Name: "x", Limit: ratelimit.PerSecond(2_000_000)}},
		{"negative burst", ratelimit.Tier{Name: "x", Limit: ratelimit.PerSecond(1).WithBurst(-1)}},
		{"no name", ratelimit.Tier{Limit: ratelimit.PerSecond(1)}},
		{"bad name", ratelimit.Tier{Name: "a b", Limit: ratelimit.PerSecond(1)}},
		{"bad algorithm", ratelimit.Tier{Name: "x", Limit: ratelimit.PerSecond(1), Algorithm: 7}},
	}
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	for _, tt := range tests {
		_, err := g.Limiter(tt.tier)
		assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, tt.name)
	}
	_, err = ratelimit.NewGroup(ratelimit.Config{MaxKeys: -1})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "negative MaxKeys")
	l, err := g.Limiter()
	require.NoError(t, err)
	assert.Equal(t, []ratelimit.Tier{ratelimit.Tiers().API}, l.Tiers(), "no tiers is the API tier")
	r, err := l.Allow(context.Background(), "k")
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	assert.Equal(t, "api", r.Tier)
}

func TestTiers(t *testing.T) {
	t.Parallel()
	ts := ratelimit.Tiers()
	tests := []struct {
		tier ratelimit.Tier
		want string
	}{
		{ts.Global, "global 100/15m0s fail_open"},
		{ts.Auth, "auth 5/15m0s fail_closed"},
		{ts.API, "api 60/1m0s fail_open"},
		{ts.Heavy, "heavy 20/1m0s fail_open"},
		{ts.Uploads, "uploads 10/1m0s fail_open"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.tier.Name+" "+tt.tier.Limit.String()+" "+tt.tier.OnFailure.String())
	}
	ts.API.Limit = ratelimit.PerMinute(120)
	assert.Equal(t, 60, ratelimit.Tiers().API.Limit.Rate, "changing a copy leaves the defaults alone")
}

// TestLocalPastTimeNeverNegative: a decision dated before the key's last
// one (AllowAt going backwards) denies and reports 0 remaining, not a
// negative count that would end up in RateLimit headers.
func TestLocalPastTimeNeverNegative(t *testing.T) {
	t.Parallel()
	l := newLocal(t, ratelimit.PerMinute(6), 0)
	r, err := l.AllowAt("k", t0, 6)
	require.NoError(t, err)
	require.True(t, r.Allowed)
	r, err = l.AllowAt("k", t0.Add(-time.Hour), 1)
	require.NoError(t, err)
	assert.False(t, r.Allowed)
	assert.Zero(t, r.Remaining)
}
