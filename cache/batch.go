package cache

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// GetMany returns the values of the keys found in L1 or L2; keys missing
// from both (or holding a negative entry) are absent from the map. The L2
// lookups are pipelined GETs — one round trip per Redis node, a cluster
// client splitting the pipeline by node — and L2 hits fill L1. Redis
// failures read as misses; stale values (Config.StaleFor) are returned as
// they are. The error is ctx.Err() if ctx ended, ErrClosed after Close
// (with the L1 hits found before), else nil.
func GetMany[V any](ctx context.Context, c *Cache, keys []string) (map[string]V, error) {
	out := make(map[string]V, len(keys))
	var missing []string
	epoch := c.flushEpoch.Load()
	for i, k := range keys {
		if e, ok := c.l1.Get(k); ok && e.epoch == epoch && e.err == nil {
			if v, ok := e.val.(V); ok {
				c.l1Hits.Add(1)
				out[k] = v
				continue
			}
		}
		if missing == nil {
			missing = make([]string, 0, len(keys)-i)
		}
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	if c.closed.Load() {
		return out, ErrClosed
	}
	if c.rdb == nil {
		c.st.misses.Add(uint64(len(missing)))
		return out, nil
	}
	snaps := make([]uint64, len(missing))
	for i, k := range missing {
		snaps[i] = c.snapshot(k)
	}
	// One pipeline per node (see l2Pipe): the keys of a node that failed
	// read as misses, the others are served.
	rkeys := make([]string, len(missing))
	for i, k := range missing {
		rkeys[i] = c.redisKey(k)
	}
	cmds := make([]*redis.StringCmd, len(missing))
	failed, _ := c.l2Pipe(ctx, rkeys, nil, func(ctx context.Context, p redis.Pipeliner, idx []int) {
		for _, i := range idx {
			cmds[i] = p.Get(ctx, rkeys[i])
		}
	}, nil)
	if len(failed) == len(missing) {
		c.st.misses.Add(uint64(len(missing)))
		return out, ctx.Err()
	}
	for _, i := range failed {
		cmds[i] = nil
	}
	c.st.misses.Add(uint64(len(failed)))
	// As ttls(0, nil) gives, but jittered per key: one batch must not
	// expire from L1 all at once.
	l1TTL := min(c.cfg.L1TTL, c.cfg.TTL)
	// No L1 fill during a flush, Close or an invalidation's barrier. The
	// lock is held only while L1 is written: corrupt values are dropped
	// from Redis after it is released.
	fill := c.l1mu.TryRLock()
	var corrupt []error // by index in missing; nil when not corrupt
	// One slice for every decoded value: the codec needs a pointer, which
	// would otherwise cost one allocation per key.
	vals := make([]V, len(missing))
	queued := make([]int, 0, len(missing))
	for i, cmd := range cmds {
		if cmd == nil {
			continue // its node failed: counted as a miss above
		}
		b, err := cmd.Bytes()
		if err != nil {
			c.st.misses.Add(1)
			continue
		}
		negErr, freshUntil, tags, err := decodeInto(c, b, &vals[i])
		if err != nil {
			if corrupt == nil {
				corrupt = make([]error, len(missing))
			}
			corrupt[i] = err
			c.st.misses.Add(1)
			continue
		}
		c.st.l2Hits.Add(1)
		if negErr != nil {
			c.st.negativeHits.Add(1)
			continue
		}
		out[missing[i]] = vals[i]
		if !fill {
			continue
		}
		e, ttl, _ := c.l2Entry(missing[i], vals[i], nil, freshUntil, tags, c.jitter(l1TTL))
		if c.putL1(e, ttl, snaps[i]) {
			queued = append(queued, i)
		}
	}
	if fill {
		c.settleMany(missing, snaps, queued)
		c.l1mu.RUnlock()
	}
	for i, err := range corrupt {
		if err != nil {
			c.corrupt(ctx, missing[i], err) // a tombstone is a plain miss
		}
	}
	return out, nil
}

// SetMany writes items to L1 and L2 — pipelined SET with a TTL on every
// key, one round trip per node — and drops the keys from the other
// instances' L1 with one message. ttl and opts are as in Set. Every value
// is encoded first: a codec error is returned before anything is written.
// It returns an error wrapping ErrUnavailable when Redis failed (L1 is set
// regardless, and the keys are dropped from L2 and the other instances in
// the background once Redis answers, as with Set), ctx.Err() if ctx ended
// first, or ErrClosed after Close.
func SetMany[V any](ctx context.Context, c *Cache, items map[string]V, ttl time.Duration, opts ...Option) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(items) == 0 {
		return nil
	}
	o := buildOptions(opts)
	type write struct {
		key          string
		l1TTL, l2TTL time.Duration
	}
	writes := make([]write, 0, len(items))
	var l2s []l2Item
	if c.rdb != nil {
		l2s = make([]l2Item, 0, len(items))
	}
	for k, v := range items {
		w := write{key: k}
		w.l1TTL, w.l2TTL = c.ttls(ttl, o)
		writes = append(writes, w)
		if c.rdb == nil {
			continue
		}
		it, err := c.newL2Item(k, v, nil, w.l2TTL, o)
		if err != nil {
			return err
		}
		l2s = append(l2s, it)
	}

	keys := make([]string, len(writes))
	entries := make([]*entry, len(writes))
	ttls := make([]time.Duration, len(writes))
	for i, w := range writes {
		keys[i] = w.key
		entries[i], ttls[i] = c.newEntry(w.key, items[w.key], nil, w.l1TTL, o)
	}
	mark := c.beginWrite(keys)
	var err error
	if c.rdb != nil {
		err = c.l2Set(ctx, l2s, true)
	}
	c.endWrite(mark, entries, ttls)
	return err
}
