// Package ratelimit limits how often a caller (a client IP, a user, an API
// key) may do something, in memory or across instances on Redis:
//
//	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: rdb}) // rdb nil: in memory
//	tiers := ratelimit.Tiers()
//	l, err := g.Limiter(tiers.Global, tiers.API) // both checked, all-or-nothing
//	mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{})
//	mux.Handle("GET /orders/{id}", mw(orders)) // 429 + Retry-After when limited
//
//	getMenu = ratelimit.Wrap1(l, func(id int) string { return fmt.Sprint("restaurant:", id) }, getMenu)
//	var le *ratelimit.LimitedError // matches ErrLimited
//	if _, err := getMenu(ctx, 42); errors.As(err, &le) {
//		log.Printf("limited by %s for %v", le.Tier, le.RetryAfter()) // resilience.Retry waits it
//	}
//
// A [Limit] says how many events a period allows (PerMinute(60)); a [Tier]
// names a limit and says what happens when Redis is down; [Tiers] returns
// Servio's five tiers as a value the caller may change. [NewGroup] makes a
// [Group], which hands out limiters ([Group.Limiter]) for one or more tiers
// on one backend:
//
//   - Without Redis (Config.Redis nil, as in Config{}): in-memory GCRA per
//     key, sharded, bounded key count (Config.MaxKeys; idle keys are
//     forgotten first), no goroutines, no allocation on a known key.
//   - With Redis: a [Redis] limiter, one Lua script per decision (GCRA,
//     sliding-window counter or fixed window), run with EVALSHA on Redis's
//     clock, atomic and exact across instances, Cluster-safe. Several tiers
//     of one key, of any algorithms, are decided by one script in one round
//     trip. Each decision has a deadline (DefaultRedisTimeout, 250 ms) and a
//     circuit breaker per Redis node (per master on a Cluster) guards Redis;
//     while a key's node is unreachable a tier either fails open to a local
//     limiter at its limit divided by the expected instances, or fails
//     closed.
//
// [Middleware] keys requests (by client IP through trusted proxies only,
// user id, API key or any func), answers 429 with Retry-After, the IETF
// RateLimit and RateLimit-Policy headers and an application/problem+json
// body, or only counts in shadow mode. [Wrap] and [Wrap1] limit plain
// functions and return a *[LimitedError] that matches [ErrLimited] and has
// a RetryAfter method, so resilience.Retry around a limited call waits as
// long as the limiter asks; [Wait], [WrapWait] and [WrapWait1] block until
// a call is allowed.
//
// Every Limiter also has Reset (forget a key, e.g. after a successful
// login) and Refund (give back an allowed decision's events, as cancelling
// a reservation does).
//
// Promises (each has a test that tries to break it):
//   - Never more than the limit: for a GCRA tier of burst B and emission
//     interval T, at most B + ⌊d/T⌋ events of one key pass in any closed
//     interval of length d, locally (rapid state machine against a model)
//     and across instances on Redis (counted by Redis's own commandstats).
//   - Retry-After is never earlier than allowed: a denied request sent again
//     exactly Retry-After later is allowed, one nanosecond earlier it is not
//     (local); Redis rounds Retry-After up to the microsecond.
//   - Tiers are all-or-nothing: a request one tier denies counts in no tier,
//     whatever the tiers' algorithms (one Redis script; locally one atomic
//     step under every tier's lock). The result is the binding tier's: the
//     denial with the longest Retry-After. A tier listed twice counts once.
//   - RateLimit-Policy's q is never less than what passes in w seconds.
//   - A dead Redis node sends only the keys it owns to the failure policy:
//     one circuit breaker per node (per master on a Cluster).
//   - No decision waits past Config.RedisTimeout for Redis; every decision
//     that did not come from Redis is counted by reason (Group.Stats,
//     perfkit.ratelimit.fallbacks {reason}).
//
// Metrics (OpenTelemetry): perfkit.ratelimit.decisions ({decision}; tier,
// outcome), perfkit.ratelimit.fallbacks ({fallback}; tier, policy, reason)
// and perfkit.ratelimit.redis.duration (s; result: ok, error, timeout).
// Prometheus exports them as perfkit_ratelimit_decisions_total,
// perfkit_ratelimit_fallbacks_total and
// perfkit_ratelimit_redis_duration_seconds. The decisions a Middleware
// can count and every fallback reason of a Redis limiter start at 0, so
// Prometheus's rate() and increase() see the first event.
package ratelimit
