package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResetAndRefund: Reset makes a key's whole quota available again in
// every tier; Refund gives back a decision's events, never beyond whole, on
// Redis (every algorithm, all tiers in one script) and locally.
func TestResetAndRefund(t *testing.T) {
	t.Parallel()
	c, prefix := sharedRedis(t)
	mk := func(name string, algo ratelimit.Algorithm) ratelimit.Tier {
		return ratelimit.Tier{Name: name, Limit: ratelimit.Per(3, 24*time.Hour), Algorithm: algo}
	}
	cases := []struct {
		name  string
		cfg   ratelimit.Config
		tiers []ratelimit.Tier
	}{
		{"local one tier", ratelimit.Config{}, []ratelimit.Tier{mk("g", ratelimit.GCRA)}},
		{"local chain", ratelimit.Config{}, []ratelimit.Tier{mk("g", ratelimit.GCRA), mk("h", ratelimit.GCRA)}},
		{"redis gcra", ratelimit.Config{Redis: c, KeyPrefix: prefix + "a:", RedisTimeout: time.Second}, []ratelimit.Tier{mk("g", ratelimit.GCRA)}},
		{"redis sliding", ratelimit.Config{Redis: c, KeyPrefix: prefix + "b:", RedisTimeout: time.Second}, []ratelimit.Tier{mk("s", ratelimit.SlidingWindow)}},
		{"redis fixed", ratelimit.Config{Redis: c, KeyPrefix: prefix + "c:", RedisTimeout: time.Second}, []ratelimit.Tier{mk("f", ratelimit.FixedWindow)}},
		{"redis mixed", ratelimit.Config{Redis: c, KeyPrefix: prefix + "d:", RedisTimeout: time.Second},
			[]ratelimit.Tier{mk("g", ratelimit.GCRA), mk("s", ratelimit.SlidingWindow), mk("f", ratelimit.FixedWindow)}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		g, err := ratelimit.NewGroup(tc.cfg)
		require.NoError(t, err, tc.name)
		l, err := g.Limiter(tc.tiers...)
		require.NoError(t, err, tc.name)
		allowed := func() int {
			n := 0
			for range 4 {
				r, err := l.Allow(ctx, "203.0.113.7")
				require.NoError(t, err, tc.name)
				if r.Allowed {
					n++
				}
			}
			return n
		}
		assert.Equal(t, 3, allowed(), "%s: the quota of 3", tc.name)
		require.NoError(t, l.Reset(ctx, "203.0.113.7"), tc.name)
		assert.Equal(t, 3, allowed(), "%s: whole again after Reset", tc.name)

		require.NoError(t, l.Refund(ctx, "203.0.113.7", 2), tc.name)
		r, err := l.AllowN(ctx, "203.0.113.7", 2)
		require.NoError(t, err, tc.name)
		assert.True(t, r.Allowed, "%s: 2 refunded events can be used again", tc.name)
		r, err = l.Allow(ctx, "203.0.113.7")
		require.NoError(t, err, tc.name)
		assert.False(t, r.Allowed, "%s: but no more than were refunded", tc.name)

		require.NoError(t, l.Reset(ctx, "203.0.113.7"), tc.name)
		require.NoError(t, l.Refund(ctx, "203.0.113.7", 3), tc.name)
		assert.Equal(t, 3, allowed(), "%s: a refund never grows the quota beyond whole", tc.name)
		assert.ErrorIs(t, l.Refund(ctx, "203.0.113.7", 4), ratelimit.ErrInvalidN, tc.name)
	}
}
