package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of the SCANs of pattern invalidation.
const scanCount = 1000

// unlinkBatch is how many keys one pipelined UNLINK batch holds.
const unlinkBatch = 500

// Delete removes keys from L1, from L2 (pipelined SETs of short-lived
// tombstones, one per key, so it works on a cluster; a tombstone reads as
// a miss and keeps a load that began before the Delete from filling L2)
// and from every other instance's L1. It returns an
// error wrapping ErrUnavailable when Redis failed (L1 is cleared anyway,
// and the rest is replayed in the background until Redis takes it),
// ctx.Err() if ctx ended first, or ErrClosed after Close. Safe for
// concurrent use, like every method of Cache.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(keys) == 0 {
		return nil
	}
	c.st.invalidations.Add(uint64(len(keys)))
	w := c.beginWrite(keys)
	if c.rdb == nil {
		c.endWrite(w, nil, nil)
		return nil
	}
	c.replayMu.RLock() // a replay of an older invalidation lands before, not after
	failed, err := c.unlinkAndAnnounce(ctx, keys)
	// Per node: the keys whose node took the tombstone are settled, the
	// others replayed.
	bad, good := splitKeys(keys, failed)
	c.settled(good)
	if len(bad) > 0 {
		c.deferKeys(bad...)
	}
	c.replayMu.RUnlock()
	c.endWrite(w, nil, nil)
	return err
}

// unlinkAndAnnounce is Delete's Redis part: replace the keys in L2 by
// tombstones and tell the other instances to drop them from L1. It
// returns the indexes in keys of those whose node failed (sorted).
func (c *Cache) unlinkAndAnnounce(ctx context.Context, keys []string) ([]int, error) {
	rk := make([]string, len(keys))
	for i, k := range keys {
		rk[i] = c.redisKey(k)
	}
	bad, err := c.l2TombstoneBulk(ctx, rk, c.message(keys, "", nil))
	if len(bad) == 0 {
		return nil, err
	}
	failed := make([]int, 0, len(bad))
	j := 0
	for i, k := range rk {
		if j < len(bad) && bad[j] == k {
			failed = append(failed, i)
			j++
		}
	}
	return failed, err
}

// InvalidatePattern removes every key matching the Redis glob pattern (in
// cache keys, without KeyPrefix) from L1, from L2 — SCAN MATCH with COUNT
// 1000 on every master and pipelined UNLINKs, never KEYS — and from every
// other instance's L1. Use EscapePattern for key parts that may hold glob
// characters. It returns how many L2 keys it removed (L1 entries, without
// Redis), and an error wrapping ErrUnavailable when Redis failed; L1 is
// cleared regardless and the rest replayed in the background. Only ctx
// bounds the SCAN (no RedisTimeout): if it ends
// first the error is ctx.Err(). After Close it returns ErrClosed.
func (c *Cache) InvalidatePattern(ctx context.Context, pattern string) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	n := c.delLocalPattern(pattern)
	c.st.invalidations.Add(1)
	if c.rdb == nil {
		return n, nil
	}
	removed, err := c.invalidatePatternL2(ctx, pattern)
	c.delLocalPattern(pattern) // what reads filled from L2 meanwhile
	if err != nil {
		c.deferPattern(pattern)
	}
	return removed, err
}

// invalidatePatternL2 is InvalidatePattern's Redis part: a new
// invalidation epoch (refusing the fills of loads that began before),
// SCAN and UNLINK on every master, then tell the other instances. On a
// cluster a master that failed the epoch does not stop the rest: the
// live masters' keys are fenced and removed, and the error makes the
// caller replay the whole invalidation.
func (c *Cache) invalidatePatternL2(ctx context.Context, pattern string) (int, error) {
	epochErr := c.newEpoch(ctx)
	if epochErr != nil && !c.clustered() {
		_ = c.publish(ctx, c.message(nil, pattern, nil))
		return 0, epochErr
	}
	match := EscapePattern(c.cfg.KeyPrefix) + pattern
	var removed atomic.Int64 // ForEachMaster scans the masters concurrently
	scan := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, match, scanCount).Iterator()
		batch := make([]string, 0, unlinkBatch)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if _, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range batch {
					p.Unlink(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
			removed.Add(int64(len(batch)))
			batch = batch[:0]
			return nil
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == unlinkBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	// Only ctx bounds a SCAN loop (no RedisTimeout); each master's scan
	// goes through that master's breaker.
	var err error
	switch r := c.rdb.(type) {
	case *redis.ClusterClient:
		err = r.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return c.l2Run(ctx, c.cb.ForAddr(n.Options().Addr), 0, func(ctx context.Context) error { return scan(ctx, n) })
		})
		if err != nil && !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err) // the slot map could not be read
		}
	case *redis.Ring:
		err = c.l2Run(ctx, c.cb.ForKey(ctx, ""), 0, func(ctx context.Context) error {
			return r.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
		})
	default:
		err = c.l2Run(ctx, c.cb.ForKey(ctx, ""), 0, func(ctx context.Context) error { return scan(ctx, r) })
	}
	if err == nil {
		err = epochErr
	}
	// Announce even when the SCAN failed part-way: the other instances
	// must still drop what the caller meant to invalidate.
	if perr := c.publish(ctx, c.message(nil, pattern, nil)); err == nil {
		err = perr
	}
	return int(removed.Load()), err
}

// InvalidateTags removes every key written WithTags(tag) for any of tags —
// taking each tag's set (SMEMBERS and DEL in one script, so a key tagged
// meanwhile is either taken or stays in the set) and replacing its
// members by tombstones, O(keys tagged) — from L1, L2 and every other
// instance's L1. When the sets cannot be read, this L1 is flushed (it may
// hold tagged values read from L2, which carry no tags here). It returns how many
// L2 keys it removed (L1 entries, without Redis), and an error wrapping
// ErrUnavailable when Redis failed (L1 is cleared regardless and the rest
// replayed in the background), ctx.Err() if ctx ended first, or ErrClosed
// after Close. Tag sets are not pruned
// when their keys expire or are deleted; they expire with their
// longest-lived key.
func (c *Cache) InvalidateTags(ctx context.Context, tags ...string) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	if len(tags) == 0 {
		return 0, nil
	}
	n := c.delLocalTags(tags)
	c.st.invalidations.Add(uint64(len(tags)))
	if c.rdb == nil {
		return n, nil
	}
	removed, err := c.invalidateTagsL2(ctx, tags)
	c.delLocalTags(tags)
	if err != nil {
		c.deferTags(tags)
	}
	return removed, err
}

// takeScript reads and deletes a tag set in one step, so a key tagged
// concurrently is either taken (and invalidated) or stays in the set.
var takeScript = redis.NewScript(`
local m = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return m
`)

// invalidateTagsL2 is InvalidateTags' Redis part: a new invalidation
// epoch (refusing the fills of loads that began before; on a cluster
// every slot's), take the tag
// sets, replace their members by tombstones, and tell the other
// instances. When the sets cannot be read this L1 is flushed: it may hold
// tagged values read from L2, which carry no tags here.
func (c *Cache) invalidateTagsL2(ctx context.Context, tags []string) (int, error) {
	var members []string
	err := c.newEpoch(ctx)
	var epochErr error
	if err != nil && c.clustered() {
		// A master failed the epoch: its slots' keys are unreachable (so
		// are their fills); the rest is still invalidated, and the error
		// makes the caller replay the whole invalidation.
		epochErr, err = err, nil
	}
	if err == nil {
		tks := make([]string, len(tags))
		for i, t := range tags {
			tks[i] = c.tagKey(t)
		}
		cmds := make([]*redis.Cmd, len(tags))
		_, err = c.l2Pipe(ctx, tks, nil, func(ctx context.Context, p redis.Pipeliner, idx []int) {
			for _, i := range idx {
				cmds[i] = takeScript.Eval(ctx, p, []string{tks[i]})
			}
		}, nil)
		// The sets are gone once a take ran: keep what was read even if
		// another take failed.
		for _, cmd := range cmds {
			if cmd == nil {
				continue // its master's breaker refused the call
			}
			if v, err := cmd.StringSlice(); err == nil {
				members = append(members, v...)
			}
		}
	}
	keys := make([]string, 0, len(members))
	for _, m := range members {
		if k, ok := strings.CutPrefix(m, c.cfg.KeyPrefix); ok {
			keys = append(keys, k)
		}
	}
	if err != nil {
		// The other instances can still drop the L1 entries they hold with
		// these tags; the members taken are replayed as keys.
		c.flushLocal()
		_ = c.publish(ctx, c.message(nil, "", tags))
		if len(keys) > 0 {
			c.deferKeys(keys...)
		}
		return 0, err
	}
	w := c.beginWrite(keys)
	bad, err := c.l2TombstoneBulk(ctx, slices.Clip(members), c.message(keys, "", tags))
	c.endWrite(w, nil, nil)
	if err != nil {
		// Only the members whose node failed are replayed.
		for _, m := range bad {
			if k, ok := strings.CutPrefix(m, c.cfg.KeyPrefix); ok {
				c.deferKeys(k)
			}
		}
		return len(members) - len(bad), err
	}
	return len(members), epochErr
}

// Flush empties L1 here and, through pub/sub, on every other instance. L2
// is left alone (use InvalidatePattern(ctx, "*") for that). It returns an
// error wrapping ErrUnavailable when the message could not be published
// (this L1 is flushed regardless and the message replayed in the
// background), ctx.Err() if ctx ended first, or ErrClosed after Close.
func (c *Cache) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.flushLocal()
	if c.rdb == nil || c.cfg.DisablePubSub {
		return nil
	}
	err := c.publish(ctx, c.flushMessage())
	if err != nil {
		c.deferFlush()
	}
	return err
}

// l2TombstoneBulk tombstones many Redis keys in pipelines of
// unlinkBatch, the last one carrying msg. It returns the keys (as given)
// whose node failed: after a failed batch the rest are not tried and are
// returned too.
func (c *Cache) l2TombstoneBulk(ctx context.Context, keys []string, msg []byte) ([]string, error) {
	for len(keys) > unlinkBatch {
		if failed, err := c.l2Tombstone(ctx, keys[:unlinkBatch], nil); err != nil {
			bad, _ := splitKeys(keys[:unlinkBatch], failed)
			_ = c.publish(ctx, msg)
			return append(bad, keys[unlinkBatch:]...), err
		}
		keys = keys[unlinkBatch:]
	}
	failed, err := c.l2Tombstone(ctx, keys, msg)
	bad, _ := splitKeys(keys, failed)
	return bad, err
}
