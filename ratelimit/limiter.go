package ratelimit

import (
	"context"
	"time"
)

// Result is the outcome of one decision.
type Result struct {
	Allowed    bool          // whether the events were allowed (and counted)
	Limit      int           // the quota: the burst (GCRA) or events per window
	Remaining  int           // events still allowed right now
	ResetAfter time.Duration // until the quota is whole again
	RetryAfter time.Duration // until the denied events would be allowed; 0 when allowed
	Tier       string        // name of the tier this result is about (the binding one)
}

// Limiter decides whether a key may do something now. Implementations are
// safe for concurrent use.
//
// A non-nil error means the limiter could not decide as configured (Redis
// unreachable with a fail-closed tier, a bad n, a cancelled context); the
// Result then says what to do (Allowed false denies).
type Limiter interface {
	// Allow reports whether one event for key may happen now, and counts it
	// if so.
	Allow(ctx context.Context, key string) (Result, error)
	// AllowN is Allow for n events at once (1 ≤ n ≤ burst).
	AllowN(ctx context.Context, key string, n int) (Result, error)
	// Reset forgets key in every tier, so its whole quota is available
	// again (for example after a successful login).
	Reset(ctx context.Context, key string) error
	// Refund gives back n events that key was allowed, in every tier, as
	// cancelling a reservation does: for work that was allowed and then
	// not done. A quota never grows beyond whole.
	Refund(ctx context.Context, key string, n int) error
}

// TieredLimiter is a Limiter that knows the tiers it enforces, so middleware
// can state them (RateLimit-Policy). Its results carry the binding tier's
// name in Result.Tier.
type TieredLimiter interface {
	Limiter
	// Tiers returns the tiers every decision checks. The caller must not
	// change the slice.
	Tiers() []Tier
}

// Algorithm selects how Redis counts. In-memory limiters always use GCRA.
type Algorithm int

const (
	// GCRA (the default) is the generic cell rate algorithm: a smooth token
	// bucket with one timestamp per key and an exact Retry-After.
	GCRA Algorithm = iota
	// SlidingWindow weighs the previous fixed window's count by how much of
	// it still overlaps the sliding window (the counter approximation).
	SlidingWindow
	// FixedWindow counts events in windows aligned to the Unix epoch.
	FixedWindow
)

// String returns "gcra", "sliding_window" or "fixed_window".
func (a Algorithm) String() string {
	switch a {
	case GCRA:
		return "gcra"
	case SlidingWindow:
		return "sliding_window"
	case FixedWindow:
		return "fixed_window"
	}
	return "unknown"
}

// FailurePolicy says what a tier does when Redis cannot decide.
type FailurePolicy int

const (
	// FailOpen (the default) decides with a local limiter at the tier's
	// limit divided by the expected number of instances.
	FailOpen FailurePolicy = iota
	// FailClosed denies (with ErrUnavailable) until Redis answers again.
	FailClosed
)

// String returns "fail_open" or "fail_closed".
func (p FailurePolicy) String() string {
	if p == FailClosed {
		return "fail_closed"
	}
	return "fail_open"
}

// Tier is a named limit. The name appears in Redis keys, metrics and the
// RateLimit-Policy header, so keep it short and token-like ("api").
type Tier struct {
	Name      string        // required; letters, digits, '_', '-', '.'
	Limit     Limit         // required
	Algorithm Algorithm     // Redis algorithm; default GCRA
	OnFailure FailurePolicy // what to do when Redis is down; default FailOpen
}

func (t Tier) validate() error {
	if t.Name == "" {
		return errInvalid("tier name is empty")
	}
	for _, c := range []byte(t.Name) {
		if !tokenChar(c) {
			return errInvalid("tier name " + t.Name + " has characters other than letters, digits, '_', '-', '.'")
		}
	}
	if t.Algorithm < GCRA || t.Algorithm > FixedWindow {
		return errInvalid("tier " + t.Name + ": unknown algorithm")
	}
	if err := t.Limit.validate(); err != nil {
		return err
	}
	return nil
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// TierSet holds Servio's five tiers. It is a plain value: change a copy.
type TierSet struct {
	Global  Tier // every request: 100 per 15 minutes
	Auth    Tier // login and tokens: 5 per 15 minutes, fails closed
	API     Tier // API routes: 60 per minute
	Heavy   Tier // AI and voice: 20 per minute
	Uploads Tier // uploads: 10 per minute
}

// Tiers returns Servio's default tiers: Global 100/15 min, Auth 5/15 min
// (FailClosed), API 60/min, Heavy 20/min, Uploads 10/min, all GCRA.
func Tiers() TierSet {
	return TierSet{
		Global:  Tier{Name: "global", Limit: Per(100, 15*time.Minute)},
		Auth:    Tier{Name: "auth", Limit: Per(5, 15*time.Minute), OnFailure: FailClosed},
		API:     Tier{Name: "api", Limit: PerMinute(60)},
		Heavy:   Tier{Name: "heavy", Limit: PerMinute(20)},
		Uploads: Tier{Name: "uploads", Limit: PerMinute(10)},
	}
}

// binding picks, of several tier results, the one the caller should report:
// the denial with the longest wait, or else the result with the fewest
// events remaining.
func binding(rs []Result) Result {
	best := rs[0]
	for _, r := range rs[1:] {
		switch {
		case !r.Allowed && (best.Allowed || r.RetryAfter > best.RetryAfter):
			best = r
		case r.Allowed && best.Allowed && r.Remaining < best.Remaining:
			best = r
		}
	}
	return best
}
