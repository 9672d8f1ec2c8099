package resilience

import (
	"math/rand/v2"
	"time"
)

// Jitter selects how Retry randomises its exponential backoff.
type Jitter int

const (
	// JitterFull waits a uniform random time in [0, min(MaxDelay,
	// BaseDelay·2^(n-1))] before retry n: the AWS "full jitter" schedule that
	// spreads a thundering herd best. It is the default.
	JitterFull Jitter = iota
	// JitterDecorrelated waits a uniform random time in [BaseDelay,
	// 3·previous delay], capped at MaxDelay (AWS "decorrelated jitter").
	JitterDecorrelated
	// JitterEqual waits half the exponential delay plus a uniform random
	// time in [0, half].
	JitterEqual
	// JitterNone waits exactly min(MaxDelay, BaseDelay·2^(n-1)).
	JitterNone
)

// expDelay returns min(max, base·2^(n-1)) without overflowing.
func expDelay(base, max time.Duration, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	shift := n - 1
	if shift >= 62 || base > max>>shift {
		return max
	}
	return base << shift
}

// randBetween returns a uniform duration in [lo, hi] (0 ≤ lo). The span is
// drawn as a uint64 so that [0, math.MaxInt64] does not overflow.
func randBetween(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rand.Uint64N(uint64(hi-lo)+1))
}

// nextDelay returns the delay before retry n (n ≥ 1) given the previous
// delay (used by the decorrelated schedule).
func nextDelay(j Jitter, base, max time.Duration, n int, prev time.Duration) time.Duration {
	switch j {
	case JitterDecorrelated:
		if prev < base {
			prev = base
		}
		hi := max
		if prev <= max/3 {
			hi = prev * 3
		}
		return randBetween(base, hi)
	case JitterEqual:
		d := expDelay(base, max, n)
		return d/2 + randBetween(0, d-d/2)
	case JitterNone:
		return expDelay(base, max, n)
	default:
		return randBetween(0, expDelay(base, max, n))
	}
}
