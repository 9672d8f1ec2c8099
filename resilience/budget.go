package resilience

import (
	"math"
	"sync/atomic"
)

// Budget is a retry budget shared by many callers (a token bucket in the
// style of gRPC retry throttling and Finagle): every call deposits Ratio
// tokens, every retry withdraws one, and the balance is capped at Max. With
// Ratio 0.2, retries settle at no more than about 20% of calls, so a failing
// dependency sees at most 1.2× its normal load instead of MaxAttempts×.
// Pass the same *Budget to every RetryConfig that should share it. Create it
// with NewBudget: the zero Budget holds no tokens and allows no retry. A
// Budget is safe for concurrent use; deposits and withdrawals never allocate.
type Budget struct {
	ratio  int64 // milli-tokens deposited per call
	max    int64 // milli-tokens
	tokens atomic.Int64
}

// NewBudget returns a budget that allows retries up to ratio of calls
// (0 < ratio ≤ 1000) with a reserve of at most max retries (default 10 when
// max is 0). It starts full.
func NewBudget(ratio float64, max int) (*Budget, error) {
	if !(ratio > 0 && ratio <= 1000) {
		return nil, invalid("budget ratio must be in (0, 1000]")
	}
	if max < 0 || int64(max) > math.MaxInt64/1000 {
		return nil, invalid("budget max must be in [0, MaxInt64/1000]")
	}
	if max == 0 {
		max = 10
	}
	b := &Budget{ratio: int64(ratio * 1000), max: int64(max) * 1000}
	if b.ratio == 0 {
		b.ratio = 1
	}
	b.tokens.Store(b.max)
	return b, nil
}

// Tokens returns the number of retries currently allowed.
func (b *Budget) Tokens() float64 { return float64(b.tokens.Load()) / 1000 }

func (b *Budget) deposit() {
	for {
		old := b.tokens.Load()
		if old >= b.max {
			return
		}
		if b.tokens.CompareAndSwap(old, min(old+b.ratio, b.max)) {
			return
		}
	}
}

func (b *Budget) withdraw() bool {
	for {
		old := b.tokens.Load()
		if old < 1000 {
			return false
		}
		if b.tokens.CompareAndSwap(old, old-1000) {
			return true
		}
	}
}
