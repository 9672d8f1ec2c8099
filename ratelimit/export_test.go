package ratelimit

import "time"

// DecideScript exposes the decision script to benchmarks, to time a bare
// EVALSHA of it beside a full decision.
const DecideScript = decideScript

// InMemory is the in-memory limiter a Group without Redis hands out for one
// tier, exposed to tests for its clock-driven methods (AllowAt, RefundAt)
// and its key accounting (Len, Evicted).
type InMemory = local

// NewInMemory returns the in-memory limiter of one tier (the zero Tier
// means Tiers().API) remembering at most maxKeys keys (0: DefaultMaxKeys).
func NewInMemory(t Tier, maxKeys int) (*InMemory, error) {
	return newLocal(localConfig{Tier: t, MaxKeys: maxKeys})
}

// AllowAt decides at a given time on a limiter of a Group without Redis:
// one in-memory limiter or a chain of them.
func AllowAt(l Limiter, key string, now time.Time, n int) (Result, error) {
	switch l := l.(type) {
	case *local:
		return l.AllowAt(key, now, n)
	case *localChain:
		return l.AllowAt(key, now, n)
	}
	panic("AllowAt: not a local limiter")
}

// RefundAt gives back n events at a given time on a limiter of a Group
// without Redis.
func RefundAt(l Limiter, key string, now time.Time, n int) {
	switch l := l.(type) {
	case *local:
		_ = l.RefundAt(key, now, n)
	case *localChain:
		l.refund(key, now, n)
	default:
		panic("RefundAt: not a local limiter")
	}
}
