// Package ratelimit limits how often a key (a client IP, a user, an API key)
// may do something, in memory or across instances on Redis.
//
// A [Limit] says how many events a period allows (PerMinute(60)); a [Tier]
// names a limit and says what happens when Redis is down; [Tiers] returns
// Servio's five tiers as a value the caller may change. Every limiter
// implements [Limiter]:
//
//   - [Local]: in-memory GCRA per key, sharded, bounded key count (idle keys
//     are forgotten first), no goroutines, no allocation on a known key.
//   - [Redis]: one Lua script per decision (GCRA, sliding-window counter or
//     fixed window), run with EVALSHA on Redis's clock, atomic and exact
//     across instances, Cluster-safe. Several tiers of one key, of any
//     algorithms, are decided by one script in one round trip. Each decision
//     has a deadline (DefaultTimeout, 250 ms) and a circuit breaker per
//     Redis node (per master on a Cluster) guards Redis; while a key's node
//     is unreachable a tier either fails open to a local limiter at its
//     limit divided by the expected instances, or fails closed.
//
// [Group] builds limiters and net/http middleware for tiers on one backend,
// Redis when a client is given and local otherwise. [Middleware] keys
// requests (by client IP through trusted proxies only, user id, API key or
// any func), answers 429 with Retry-After, the IETF RateLimit and
// RateLimit-Policy headers and an application/problem+json body, or only
// counts in shadow mode. [Wrap] and [WrapKey] limit plain functions and
// return a *[LimitedError] that matches [ErrLimited]; [Wait] blocks until a
// call is allowed.
//
// Metrics (OpenTelemetry): ratelimit.decisions {tier, outcome},
// ratelimit.fallbacks {tier, policy} and ratelimit.redis.duration (seconds).
package ratelimit
