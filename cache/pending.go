package cache

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the invalidations kept for replay. Past them the excess is
// dropped with a warning: the other instances are flushed once Redis
// answers, and L2 keeps the dropped keys' old values until their TTL.
const (
	maxPendingKeys     = 10_000
	maxPendingPatterns = 100 // each costs a SCAN of the keyspace to replay
	maxPendingTags     = 1_000
)

// Retry delays of pending invalidations: doubling from the first to the
// last, cut short when a node's breaker closes. On a single node each
// round starts with a PING through the breaker, so while the breaker is
// open a round costs one refused call, and the first round after it lets
// a probe through carries the backlog; on a cluster each key's replay
// goes through its own master's breaker.
const (
	pendingFirstDelay = 100 * time.Millisecond
	pendingMaxDelay   = time.Second
	// pendingStepTimeout bounds one replayed pattern or tag invalidation.
	pendingStepTimeout = 30 * time.Second
)

// pending holds the invalidations whose Redis part failed — the breaker
// was open, Redis was down or slow, the caller gave up — so that L2 and
// the other instances' L1 still get them once Redis takes writes again.
// Without it, an invalidation made while this instance's breaker is open
// (which lasts BreakerOpenTimeout, also after Redis is back) would be lost:
// the other instances would serve the old value until their L1 TTL, and
// L2 until its TTL.
type pending struct {
	mu       sync.Mutex
	keys     map[string]struct{}
	patterns map[string]struct{}
	tags     map[string]struct{}
	flush    bool // tell the other instances to flush their L1
	warned   bool // the overflow warning was logged
	kick     chan struct{}
	// recovered wakes a waiting replay round at once: a node's breaker
	// closed, so its Redis takes calls again. Replaying then, not up to
	// pendingMaxDelay later, keeps an old invalidation from landing after
	// a newer write another instance made once the node was back.
	recovered chan struct{}
	// hook (tests only, nil otherwise) runs in a replay round before its
	// first Redis write (landed false) and after its last (landed true),
	// with the items the round replays.
	hook atomic.Pointer[func(landed bool, keys, patterns, tags []string)]
}

// nodeRecovered is called when a breaker closes.
func (p *pending) nodeRecovered() {
	select {
	case p.recovered <- struct{}{}:
	default:
	}
}

// add queues items in m, up to limit; past it the other instances will
// be flushed instead. It reports whether everything fit. Call with mu held.
func (p *pending) add(m map[string]struct{}, limit int, items ...string) bool {
	for _, it := range items {
		if len(m) >= limit {
			p.flush = true
			return false
		}
		m[it] = struct{}{}
	}
	return true
}

// deferKeys queues keys whose UNLINK and announcement failed.
func (c *Cache) deferKeys(keys ...string) {
	c.deferIn(func(p *pending) bool { return p.add(p.keys, maxPendingKeys, keys...) })
}

func (c *Cache) deferPattern(pattern string) {
	c.deferIn(func(p *pending) bool { return p.add(p.patterns, maxPendingPatterns, pattern) })
}

func (c *Cache) deferTags(tags []string) {
	c.deferIn(func(p *pending) bool { return p.add(p.tags, maxPendingTags, tags...) })
}

func (c *Cache) deferFlush() { c.deferIn(func(p *pending) bool { p.flush = true; return true }) }

func (c *Cache) deferIn(add func(*pending) bool) {
	p := &c.pend
	p.mu.Lock()
	warn := !add(p) && !p.warned
	p.warned = p.warned || warn
	p.mu.Unlock()
	if warn {
		c.cfg.Logger.Warn("cache: too many invalidations waiting for Redis; the excess is dropped: the other instances will be flushed, and L2 keeps those keys' old values until their TTL",
			"cache", c.cfg.Name)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// settled drops keys from the pending set: a later write or delete of
// them went through, and replaying the older one would only drop the
// newer value.
func (c *Cache) settled(keys []string) {
	p := &c.pend
	p.mu.Lock()
	if len(p.keys) > 0 {
		for _, k := range keys {
			delete(p.keys, k)
		}
	}
	p.mu.Unlock()
}

// pendingCount is the number of invalidations waiting for Redis.
func (c *Cache) pendingCount() int {
	p := &c.pend
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.keys) + len(p.patterns) + len(p.tags)
	if p.flush {
		n++
	}
	return n
}

// retryPending is the background goroutine that replays pending
// invalidations, with growing delays, until they all went through; it
// returns when ctx (cancelled by Close) ends.
func (c *Cache) retryPending(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.pend.kick:
		}
		for delay := pendingFirstDelay; ; delay = min(2*delay, pendingMaxDelay) {
			t.Reset(delay)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-c.pend.recovered:
				t.Stop()
			}
			if c.replayPending(ctx) {
				break
			}
		}
	}
}

// replayPending tries the pending invalidations once, requeues what still
// fails and reports whether none is left. A round starts with a PING
// through the breaker and stops at the first failure, so an unreachable
// Redis costs one call a round and a SCAN is never the breaker's probe.
// What goes through is also cleared from this L1 again: a read between
// the failure and now may have refilled it from the old L2 value.
func (c *Cache) replayPending(ctx context.Context) bool {
	// On a cluster there is no one node to ask: each key's replay goes
	// through its own master's breaker, which fails fast while open.
	if !c.clustered() && c.l2Run(ctx, c.cb.ForKey(ctx, ""), c.cfg.RedisTimeout, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }) != nil {
		return c.pendingCount() == 0
	}
	// A write of this instance that gets through while the round runs
	// would be undone by it: writes wait, and those that got through
	// before have cancelled their keys' replay (settled).
	c.replayMu.Lock()
	defer c.replayMu.Unlock()
	p := &c.pend
	p.mu.Lock()
	keys := slices.Collect(maps.Keys(p.keys))
	patterns := slices.Collect(maps.Keys(p.patterns))
	tags := slices.Collect(maps.Keys(p.tags))
	flush := p.flush
	p.mu.Unlock()
	if h := p.hook.Load(); h != nil && len(keys)+len(patterns)+len(tags) > 0 {
		(*h)(false, keys, patterns, tags)
		defer (*h)(true, keys, patterns, tags)
	}

	done := func(m func(*pending) map[string]struct{}, items ...string) {
		p.mu.Lock()
		for _, it := range items {
			delete(m(p), it)
		}
		p.mu.Unlock()
		c.st.replayed.Add(uint64(len(items)))
	}
	if len(keys) > 0 {
		// Per node: the keys whose node took the tombstone are done, the
		// others stay queued.
		failed, err := c.unlinkAndAnnounce(ctx, keys)
		bad, good := splitKeys(keys, failed)
		c.delLocal(good...)
		done(func(p *pending) map[string]struct{} { return p.keys }, good...)
		if err != nil || len(bad) > 0 {
			return false
		}
	}
	// bounded runs one pattern or tag replay within pendingStepTimeout.
	bounded := func(run func(context.Context) (int, error)) error {
		sctx, cancel := context.WithTimeout(ctx, pendingStepTimeout)
		defer cancel()
		_, err := run(sctx)
		return err
	}
	for _, pat := range patterns {
		if bounded(func(ctx context.Context) (int, error) { return c.invalidatePatternL2(ctx, pat) }) != nil {
			return false
		}
		c.delLocalPattern(pat)
		done(func(p *pending) map[string]struct{} { return p.patterns }, pat)
	}
	if len(tags) > 0 {
		if bounded(func(ctx context.Context) (int, error) { return c.invalidateTagsL2(ctx, tags) }) != nil {
			return false
		}
		c.delLocalTags(tags)
		done(func(p *pending) map[string]struct{} { return p.tags }, tags...)
	}
	if flush {
		if c.publish(ctx, c.flushMessage()) != nil {
			return false
		}
		p.mu.Lock()
		p.flush, p.warned = false, false
		p.mu.Unlock()
		c.st.replayed.Add(1)
	}
	return c.pendingCount() == 0
}
