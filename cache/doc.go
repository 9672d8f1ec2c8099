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
// from L1 and the loader, and L2 errors are counted apart from misses.
//
// Beyond that: stale-while-revalidate (Config.StaleFor), TTL jitter
// (Config.Jitter), negative caching (Config.NegativeTTL), tags (WithTags),
// the Cacheable and Memoize wrappers, OpenTelemetry metrics and Stats.
//
// Values handed to or returned by the cache are shared with L1: treat them
// as immutable.
package cache
