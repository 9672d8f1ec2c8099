package dbpool

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUsesLimitJitter(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int64(7500), usesLimit(7500, 0), "exact with jitter off")
	assert.Equal(t, int64(0), usesLimit(0, 0.1), "0: unlimited")
	assert.Equal(t, int64(5), usesLimit(5, 0.1), "no room for 10 % jitter")
	seen := map[int64]bool{}
	lo, hi := int64(1<<62), int64(0)
	for range 2000 {
		n := usesLimit(7500, 0.1)
		seen[n] = true
		lo, hi = min(lo, n), max(hi, n)
	}
	assert.GreaterOrEqual(t, lo, int64(6750))
	assert.LessOrEqual(t, hi, int64(8250))
	assert.Less(t, lo, int64(6900), "spread reaches the low end")
	assert.Greater(t, hi, int64(8100), "spread reaches the high end")
	assert.Greater(t, len(seen), 500, "limits are spread, not one wave")
}

func TestMaxUsesJitterDefaults(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]float64{0: DefaultMaxUsesJitter, -1: 0, 0.25: 0.25, 1: 1} {
		c, err := Config{MaxUsesJitter: in}.withDefaults("x")
		assert.NoError(t, err)
		assert.Equal(t, want, c.MaxUsesJitter, "MaxUsesJitter %v", in)
	}
	for _, bad := range []float64{1.5, math.NaN()} {
		_, err := Config{MaxUsesJitter: bad}.withDefaults("x")
		assert.ErrorIs(t, err, ErrInvalidConfig, "MaxUsesJitter %v", bad)
	}
	spread := map[int64]bool{}
	for range 500 {
		n := usesLimit(1000, 0.5)
		assert.GreaterOrEqual(t, n, int64(500))
		assert.LessOrEqual(t, n, int64(1500))
		spread[n] = true
	}
	assert.Greater(t, len(spread), 100, "a wider fraction spreads wider")
}
