package ratelimit

import "sync/atomic"

// Stats counts what a Group's Redis limiters did since the Group was made.
// Every Redis decision is in exactly one of the four counts.
type Stats struct {
	// Redis is how many decisions Redis made.
	Redis uint64
	// Timeouts is how many decisions ran out of Config.RedisTimeout waiting
	// for Redis and were made by the tiers' failure policy. A healthy Redis
	// should keep this at zero: if it grows, Redis or the client's pool is
	// slower than the deadline allows.
	Timeouts uint64
	// Errors is how many decisions failed on Redis for another reason
	// (connection refused, a script error) and were made by the failure
	// policy.
	Errors uint64
	// Rejected is how many decisions were made by the failure policy
	// without asking Redis, because the breaker of the key's node was open.
	Rejected uint64
}

// stats are the counters behind Stats.
type stats struct {
	redis, timeouts, errors, rejected atomic.Uint64
}

// Stats returns the counts of the Group's Redis decisions (all zero
// without Redis). It is safe for concurrent use.
func (g *Group) Stats() Stats {
	if g.b == nil {
		return Stats{}
	}
	s := &g.b.stats
	return Stats{Redis: s.redis.Load(), Timeouts: s.timeouts.Load(), Errors: s.errors.Load(), Rejected: s.rejected.Load()}
}
