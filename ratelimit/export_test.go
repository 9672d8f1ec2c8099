package ratelimit

import "time"

// DecideScript exposes the decision script to benchmarks, to time a bare
// EVALSHA of it beside a full decision.
const DecideScript = decideScript

// AllowAt decides at a given time on a limiter of a Group without Redis:
// a *Local or a chain of them.
func AllowAt(l Limiter, key string, now time.Time, n int) (Result, error) {
	switch l := l.(type) {
	case *Local:
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
	case *Local:
		_ = l.RefundAt(key, now, n)
	case *localChain:
		l.refund(key, now, n)
	default:
		panic("RefundAt: not a local limiter")
	}
}
