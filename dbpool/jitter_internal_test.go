package dbpool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUsesLimitJitter(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int64(7500), usesLimit(7500, true), "exact with jitter off")
	assert.Equal(t, int64(0), usesLimit(0, false), "0: unlimited")
	assert.Equal(t, int64(5), usesLimit(5, false), "no room for 10 % jitter")
	seen := map[int64]bool{}
	lo, hi := int64(1<<62), int64(0)
	for range 2000 {
		n := usesLimit(7500, false)
		seen[n] = true
		lo, hi = min(lo, n), max(hi, n)
	}
	assert.GreaterOrEqual(t, lo, int64(6750))
	assert.LessOrEqual(t, hi, int64(8250))
	assert.Less(t, lo, int64(6900), "spread reaches the low end")
	assert.Greater(t, hi, int64(8100), "spread reaches the high end")
	assert.Greater(t, len(seen), 500, "limits are spread, not one wave")
}
