package cache

import (
	"context"
	"time"
)

// GetOrSet returns the value of key: from L1 (no decoding, no allocation),
// else from L2 (one round trip; fills L1), else from load, whose result is
// written to both tiers. Concurrent callers missing the same key share one
// L2 read and one load. ttl is the L2 TTL (0: Config.TTL); L1 keeps the value
// for min(Config.L1TTL, ttl) — with no Redis, ttl is L1's TTL.
//
// The L2 read runs in the first caller's goroutine (bounded by
// Config.RedisTimeout); load runs in its own goroutine with a context that
// keeps ctx's values but not its cancellation, bounded by
// Config.LoadTimeout: a caller whose ctx ends gets ctx.Err() at once while
// the load goes on for the others. Loader errors are returned to every
// waiting caller and not cached, unless negative caching is on and
// Config.IsNegative(err). A loader panic is re-raised in every waiting
// caller as a *PanicError. Redis failures are never returned: they count as
// misses (and in Stats.L2Errors). A Delete, Set or invalidation of key while
// a load runs keeps its result out of both tiers. With Config.StaleFor, a
// stale hit returns at once and starts one background refresh.
//
// Go allocates a loader closure that captures variables at the call site;
// pass a prebuilt func, or use Cacheable, to keep L1 hits allocation-free.
func GetOrSet[V any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (V, error), opts ...Option) (V, error) {
	if e, v, ok := hitL1[V](c, key); ok {
		if e.fresh != 0 && c.stale(e) {
			c.st.staleServed.Add(1)
			refresh(ctx, c, key, ttl, load, opts)
		}
		return v, e.err
	}
	return getOrLoad(ctx, c, key, ttl, load, opts)
}

// hitL1 looks key up in L1 and counts the hit. A value of another type
// than V is a miss.
func hitL1[V any](c *Cache, key string) (*entry, V, bool) {
	e, ok := c.l1.Get(key)
	if !ok || e.epoch != c.flushEpoch.Load() {
		var zero V
		return nil, zero, false
	}
	v, ok := e.val.(V)
	if !ok && e.err == nil {
		return nil, v, false
	}
	c.l1Hits.Add(1)
	if e.err != nil {
		c.st.negativeHits.Add(1)
	}
	return e, v, true
}

func getOrLoad[V any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (V, error), opts []Option) (V, error) {
	if err := ctx.Err(); err != nil {
		var zero V
		return zero, err
	}
	o := buildOptions(opts)
	cl, leader, ok := c.join(key, o)
	if !ok {
		return load(ctx) // closed: no caching, the caller still gets its value
	}
	if leader {
		m := newMiss(ctx, c, key, cl, ttl, load, o, false)
		if m.fromL2() {
			c.wg.Done()
		} else {
			go m.fromLoader()
		}
	} else {
		c.st.sharedLoads.Add(1)
	}
	return waitCall[V](ctx, cl)
}

// refresh starts one background load of key unless one is running.
func refresh[V any](ctx context.Context, c *Cache, key string, ttl time.Duration,
	load func(context.Context) (V, error), opts []Option) {
	o := buildOptions(opts)
	if cl, leader, ok := c.join(key, o); ok && leader {
		m := newMiss(ctx, c, key, cl, ttl, load, o, true)
		go func() {
			if m.fromL2() {
				c.wg.Done()
				return
			}
			m.fromLoader()
		}()
	}
}

// Get returns the value of key from L1 or L2, or an error wrapping ErrMiss.
// A negative entry returns its cached error. A stale value (within
// Config.StaleFor) is returned as it is, since Get has no loader. Redis
// failures read as misses. It returns ctx.Err() if ctx ends first and
// ErrClosed after Close. Like every function of the package it is safe for
// concurrent use.
func Get[V any](ctx context.Context, c *Cache, key string) (V, error) {
	if e, v, ok := hitL1[V](c, key); ok {
		return v, e.err
	}
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if c.closed.Load() {
		return zero, ErrClosed
	}
	snap := c.snapshot(key)
	b := c.l2Get(ctx, key)
	if b == nil {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		c.st.misses.Add(1)
		return zero, ErrMiss
	}
	d, err := decode[V](c, b)
	if err != nil {
		c.corrupt(ctx, key, err)
		c.st.misses.Add(1)
		return zero, ErrMiss
	}
	c.st.l2Hits.Add(1)
	if d.err != nil {
		c.st.negativeHits.Add(1)
	}
	l1TTL, _ := c.ttls(0, nil)
	c.fillFromL2(key, d.val, d.err, d.freshUntil, d.tags, l1TTL, snap)
	return d.val, d.err
}

// Set writes value under key to L1 and L2 (SET EX in one pipeline with the
// tag updates and the invalidation message) and drops key from the other
// instances' L1. ttl is as in GetOrSet. Once it returned nil, this
// instance reads value (or, after an invalidation, a miss) and L2 holds
// it until overwritten, deleted or expired. It returns an error wrapping
// ErrUnavailable when Redis failed (L1 is set regardless; the key's L2
// value and the other instances' copies are then dropped in the
// background once Redis answers, unless a later write of the key on this
// instance gets through first; a later write on another instance does not
// stop the drop, which then removes that newer value too: a miss),
// ctx.Err() if ctx ended first, ErrClosed after Close, or the codec's
// error (then neither tier changed).
func Set[V any](ctx context.Context, c *Cache, key string, value V, ttl time.Duration, opts ...Option) error {
	if c.closed.Load() {
		return ErrClosed
	}
	o := buildOptions(opts)
	l1TTL, l2TTL := c.ttls(ttl, o)
	var it l2Item
	if c.rdb != nil {
		var err error
		if it, err = c.newL2Item(key, value, nil, l2TTL, o); err != nil {
			return err
		}
	}
	keys := []string{key}
	w := c.beginWrite(keys)
	var err error
	if c.rdb != nil {
		err = c.l2Set(ctx, []l2Item{it}, true)
	}
	e, t := c.newEntry(key, value, nil, l1TTL, o)
	c.endWrite(w, []*entry{e}, []time.Duration{t})
	return err
}
