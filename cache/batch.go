package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// GetMany returns the values of the keys found in L1 or L2; keys missing
// from both (or holding a negative entry) are absent from the map. The L2
// lookups are pipelined GETs — one round trip per Redis node, a cluster
// client splitting the pipeline by node — and L2 hits fill L1. Redis
// failures read as misses; stale values (Config.StaleFor) are returned as
// they are. The error is ctx.Err() if ctx ended, else nil.
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
	if c.rdb == nil || c.closed.Load() {
		c.st.misses.Add(uint64(len(missing)))
		return out, nil
	}
	snaps := make([]uint64, len(missing))
	for i, k := range missing {
		snaps[i] = c.snapshot(k)
	}
	var cmds []redis.Cmder
	err := c.l2Do(ctx, func(ctx context.Context) error {
		var err error
		cmds, err = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range missing {
				p.Get(ctx, c.redisKey(k))
			}
			return nil
		})
		if errors.Is(err, redis.Nil) {
			err = nil
			for _, cmd := range cmds {
				if e := cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
					return e
				}
			}
		}
		return err
	})
	if err != nil || len(cmds) != len(missing) {
		c.st.misses.Add(uint64(len(missing)))
		return out, ctx.Err()
	}
	l1TTL, _ := c.ttls(0, nil)
	fill := c.l1mu.TryRLock() // false during a flush or Close: no L1 fill
	if fill {
		defer c.l1mu.RUnlock()
	}
	// One slice for every decoded value: the codec needs a pointer, which
	// would otherwise cost one allocation per key.
	vals := make([]V, len(missing))
	queued := make([]int, 0, len(missing))
	for i, cmd := range cmds {
		b, err := cmd.(*redis.StringCmd).Bytes()
		if err != nil {
			c.st.misses.Add(1)
			continue
		}
		negErr, freshUntil, err := decodeInto(c, b, &vals[i])
		if err != nil {
			c.corrupt(ctx, missing[i], err)
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
		e, ttl, _ := c.l2Entry(missing[i], vals[i], nil, freshUntil, l1TTL)
		if c.putL1(e, ttl, snaps[i]) {
			queued = append(queued, i)
		}
	}
	if len(queued) > 0 {
		c.l1.Wait()
		for _, i := range queued {
			if c.snapshot(missing[i]) != snaps[i] {
				c.l1.Del(missing[i])
			}
		}
	}
	return out, nil
}

// SetMany writes items to L1 and L2 — pipelined SET with a TTL on every
// key, one round trip per node — and drops the keys from the other
// instances' L1 with one message. ttl and opts are as in Set. It returns an
// error wrapping ErrUnavailable when Redis failed (L1 is set regardless).
func SetMany[V any](ctx context.Context, c *Cache, items map[string]V, ttl time.Duration, opts ...Option) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(items) == 0 {
		return nil
	}
	o := buildOptions(opts)
	var tags []string
	if o != nil {
		tags = o.tags
	}
	var (
		fresh  time.Time
		encErr error
	)
	fill := c.l1mu.TryRLock() // false during a flush or Close: no L1 fill
	l2s := make([]l2Item, 0, len(items))
	queued := make([]string, 0, len(items))
	snaps := make([]uint64, 0, len(items))
	keys := make([]string, 0, len(items))
	for k := range items {
		c.bumpKey(k)
		keys = append(keys, k)
	}
	c.forgetKeys(keys)
	for k, v := range items {
		snap := c.snapshot(k)
		l1TTL, l2TTL := c.ttls(ttl, o)
		e, t := c.newEntry(k, v, nil, l1TTL, o)
		if fill && c.putL1(e, t, snap) {
			queued = append(queued, k)
			snaps = append(snaps, snap)
		}
		if c.rdb == nil {
			continue
		}
		if c.cfg.StaleFor > 0 {
			fresh = c.cfg.Now().Add(l2TTL)
			l2TTL += c.cfg.StaleFor
		}
		b, err := c.encode(v, nil, fresh)
		if err != nil {
			encErr = err
			break
		}
		l2s = append(l2s, l2Item{key: k, val: b, ttl: l2TTL, tags: tags})
	}
	if len(queued) > 0 {
		c.l1.Wait()
		for i, k := range queued {
			if c.snapshot(k) != snaps[i] {
				c.l1.Del(k)
			}
		}
	}
	if fill {
		c.l1mu.RUnlock()
	}
	if encErr != nil {
		return encErr
	}
	return c.l2Set(ctx, l2s, true)
}
