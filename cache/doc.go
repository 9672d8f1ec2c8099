// Package cache is a two-tier read-through cache, used through generic
// functions over a *Cache:
//
//	opt, _ := perfkit.RedisOptions("redis://127.0.0.1:6379/0")
//	c, err := cache.New(cache.Config{Redis: redis.NewClient(opt), KeyPrefix: "servio:"})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	menu, err := cache.GetOrSet(ctx, c, "menu:42", 0, func(ctx context.Context) (Menu, error) {
//		return db.Menu(ctx, 42)
//	})
//
// The tiers are an in-process L1 (ristretto v2, holding decoded values) in
// front of an optional shared L2 (Redis through any redis.UniversalClient:
// single node, Sentinel or Cluster); Config{} is an L1-only cache.
//
// GetOrSet looks in L1 (no decoding, no allocation), then L2 (one round
// trip; a hit fills L1), then runs the loader once for all concurrent callers
// of a key (singleflight), detached from any one caller's cancellation.
// L2 values carry a small header (magic, format version, codec, flags,
// the write's random token, then the value's tags if any) so an
// empty value is not a miss and a corrupt or foreign value is counted,
// deleted and treated as a miss.
//
// # Consistency contract
//
// For every write — Set, SetMany, Delete, InvalidatePattern,
// InvalidateTags, Flush — and every load racing one:
//
//   - Read-your-writes: once a write returned nil on an instance, every
//     later read on that instance returns the new value or runs the loader
//     (and shares no load that began before the write), never the old
//     value.
//   - No lost write: a Set or SetMany that returned nil is in L2 until
//     overwritten, deleted or expired. A replayed invalidation (see
//     Outage) is such a delete, wherever it came from: one that returned
//     ErrUnavailable before the Set began may be replayed after it and
//     remove its value from L2 — a miss, never an older value. A key's
//     replay is cancelled by a later write of the key on the same
//     instance only; a pattern or tag replay removes what matches it
//     when it runs.
//   - No stale resurrection: a load that began before an invalidation does
//     not fill either tier, on any instance, after the invalidation
//     returned. (A load's value is written to L2 with one conditional Lua
//     call: only if the key still holds the write — value or tombstone —
//     the load saw when it missed, and the invalidation epoch is
//     unchanged. Delete leaves a short-lived tombstone, not a gap;
//     pattern and tag invalidations replace the epoch. On a Redis
//     Cluster every hash slot has its own epoch, in the slot it guards,
//     and those invalidations replace all 16384.)
//   - Cross-instance: while Redis is healthy, the other instances drop
//     their L1 copy when the write's pub/sub message arrives, published in
//     the same round trip as the write (on a cluster, right after it): within a few milliseconds on one
//     host (1.5–10 ms measured on a loaded 2-core machine; see
//     RELIABILITY.md).
//   - Tags: a key tagged while InvalidateTags runs is either invalidated
//     or stays in the tag's set.
//   - Outage: while Redis is unreachable, writes return ErrUnavailable,
//     invalidations clear this L1 at once (a Set puts its value there)
//     and are replayed in the background (UNLINK or
//     tombstone in L2, the announcement to the other instances, and this
//     L1 cleared again) until Redis takes them; the other instances serve
//     their L1 copies for at most L1TTL; when the pub/sub connection comes
//     back, every instance flushes its L1 (messages may have been lost).
//     Up to 10,000 keys, 100 patterns and 1,000 tags are kept for replay;
//     past that the other instances are flushed once Redis answers, and
//     L2 keeps the dropped keys' old values until their TTL.
//
// Redis Cluster: every master has its own circuit breaker, so a dead
// master keeps only its own keys out of L2: with one master of three dead
// (and cluster-require-full-coverage off) the live masters' keys are still
// read and written, the dead master's fail fast once its breaker opened
// (reads miss, writes return ErrUnavailable and are replayed). A batch —
// GetMany, SetMany, Delete of many keys, a tag's members — is one
// pipeline per master, each with its own outcome: the keys of a master
// that failed miss or are replayed, the others are served or written
// (SetMany still returns ErrUnavailable when any part failed). Each
// instance subscribes to the invalidation channel on every master and
// applies an announcement once, however many masters delivered it; it
// publishes through any live master (classic pub/sub reaches every node).
// So a dead master, even the one whose slot holds the channel's name,
// stops no announcement: the cross-instance bound above holds for the
// keys of the live masters. Every rule above holds on a cluster as on a
// single node, for the keys of the live masters: a pattern or tag
// invalidation replaces the epochs of every master it reaches, so no
// load that began before it fills L2 there after it returned; while a
// master is dead its slots keep their epoch (their keys, and so their
// fills, are unreachable), and the invalidation removes the live
// masters' keys, returns ErrUnavailable and is replayed until that
// master takes it too.
//
// Costs on a cluster: a pattern or tag invalidation writes the 16384
// epoch keys (one pipeline per master, shared by the concurrent
// invalidations of an instance; 15–30 ms with 3 masters on a
// loaded 2-core host, see RELIABILITY.md), and a miss reads its slot's
// epoch (one more round trip, as on a single node).
//
// Limits: a Redis that loses its data
// (restart without persistence) loses tombstones too; the new epoch then
// fences the loads that began before. A dead or slow Redis is put behind
// a circuit breaker with short timeouts: reads keep being served from L1
// and the loader, and L2 errors are counted apart from misses.
//
// Beyond that: stale-while-revalidate (Config.StaleFor), TTL jitter
// (Config.TTLJitter), negative caching (Config.NegativeTTL), tags (WithTags),
// the Cacheable and Memoize wrappers, OpenTelemetry metrics and Stats.
//
// Metrics (instrument scope github.com/servio/perfkit/cache, attribute
// cache.name; counters are observable, read from the same atomics as Stats,
// so the hot path only adds to an atomic):
//
//	perfkit.cache.hits{cache.tier=l1|l2}  {hit}
//	perfkit.cache.misses                  {miss}
//	perfkit.cache.loads                   {load}
//	perfkit.cache.load_errors             {error}
//	perfkit.cache.shared_loads            {caller}
//	perfkit.cache.stale_hits              {hit}
//	perfkit.cache.l2.errors               {error}
//	perfkit.cache.l2.rejections           {rejection}
//	perfkit.cache.corrupt_values          {value}
//	perfkit.cache.invalidations           {invalidation}
//	perfkit.cache.l1.drops                {drop}
//	perfkit.cache.replays                 {invalidation}
//	perfkit.cache.load.duration{outcome=ok|error}  histogram, s
//
// Redis: build the client with perfkit.RedisOptions (or
// perfkit.RedisClusterOptions): ContextTimeoutEnabled, so RedisTimeout
// bounds socket reads of a hung server, and few, quick retries. go-redis's
// defaults retry a refused dial 5 times 100 ms apart (and a single-server
// client a command 3 times), so a call to a dead Redis would use the whole
// RedisTimeout. Tags use EXPIRE NX/GT, so they need Redis 7.
//
// Values handed to or returned by the cache are shared with L1: treat them
// as immutable.
package cache
