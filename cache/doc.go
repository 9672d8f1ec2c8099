// Package cache is a two-tier read-through cache: an in-process L1
// (ristretto v2, holding decoded values) in front of an optional shared L2
// (Redis through any redis.UniversalClient: single node, Sentinel or Cluster).
//
// The typed API is a set of generic functions over a *Cache:
//
//	c, _ := cache.New(cache.Config{Redis: rdb})
//	defer c.Close()
//	menu, err := cache.GetOrSet(ctx, c, "menu:42", 0, func(ctx context.Context) (Menu, error) {
//		return db.Menu(ctx, 42)
//	})
//
// GetOrSet looks in L1 (no decoding, no allocation), then L2 (one round
// trip; a hit fills L1), then runs the loader once for all concurrent callers
// of a key (singleflight), detached from any one caller's cancellation.
// L2 values carry a small header (magic, format version, codec, flags) so an
// empty value is not a miss and a corrupt or foreign value is counted,
// deleted and treated as a miss.
//
// Writes (Set, Delete, InvalidatePattern, InvalidateTags) reach the other
// instances' L1 through Redis pub/sub; when the subscription reconnects,
// messages may have been lost, so L1 is flushed. A dead or slow Redis is
// put behind a circuit breaker with short timeouts: reads keep being served
// from L1 and the loader, and L2 errors are counted apart from misses. An
// invalidation whose Redis part fails (Redis down, or this instance's
// breaker still open after Redis came back) clears this L1 at once and is
// replayed in the background — UNLINK from L2, the announcement to the
// other instances, and this L1 cleared again — until Redis takes it
// (Stats.Replayed). A later successful write or delete of a key cancels
// its replay. Up to 10,000 keys, 100 patterns and 1,000 tags are kept;
// past that the other instances are flushed once Redis answers, and L2
// keeps the dropped keys' old values until their TTL.
//
// Beyond that: stale-while-revalidate (Config.StaleFor), TTL jitter
// (Config.Jitter), negative caching (Config.NegativeTTL), tags (WithTags),
// the Cacheable and Memoize wrappers, OpenTelemetry metrics and Stats.
//
// Metrics (instrument scope github.com/servio/perfkit/cache, attribute
// cache.name): perfkit.cache.hits{cache.tier=l1|l2}, perfkit.cache.misses,
// perfkit.cache.loads, perfkit.cache.load_errors, perfkit.cache.shared_loads,
// perfkit.cache.stale_served, perfkit.cache.l2.errors,
// perfkit.cache.l2.rejected, perfkit.cache.corrupt,
// perfkit.cache.invalidations, perfkit.cache.l1.drops (observable counters
// read from the same atomics as Stats, so the hot path only adds to an
// atomic) and the histogram perfkit.cache.load.duration in seconds.
//
// Redis: give the client ContextTimeoutEnabled so L2Timeout bounds socket
// reads of a hung server, and few, quick retries: go-redis's defaults
// retry a refused dial 5 times 100 ms apart (and a single-server client a
// command 3 times), so a call to a dead Redis uses the whole L2Timeout.
// examples/servio sets DialerRetries 1, and for one server MaxRetries 1
// with a 1–4 ms backoff. Tags use EXPIRE NX/GT, so they need Redis 7.
//
// Values handed to or returned by the cache are shared with L1: treat them
// as immutable.
package cache
