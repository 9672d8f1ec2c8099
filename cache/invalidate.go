package cache

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of the SCANs of pattern invalidation.
const scanCount = 1000

// unlinkBatch is how many keys one pipelined UNLINK batch holds.
const unlinkBatch = 500

// Delete removes keys from L1, from L2 (pipelined UNLINK, one per key, so
// it works on a cluster) and from every other instance's L1. It returns an
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
	c.delLocal(keys...)
	c.st.invalidations.Add(uint64(len(keys)))
	if c.rdb == nil {
		return nil
	}
	err := c.unlinkAndAnnounce(ctx, keys)
	if err != nil {
		c.deferKeys(keys...)
	} else {
		c.settled(keys)
	}
	return err
}

// unlinkAndAnnounce is Delete's Redis part: UNLINK the keys from L2 and
// tell the other instances to drop them from L1.
func (c *Cache) unlinkAndAnnounce(ctx context.Context, keys []string) error {
	rk := make([]string, len(keys))
	for i, k := range keys {
		rk[i] = c.redisKey(k)
	}
	return c.l2UnlinkBulk(ctx, rk, c.message(keys, "", nil))
}

// InvalidatePattern removes every key matching the Redis glob pattern (in
// cache keys, without KeyPrefix) from L1, from L2 — SCAN MATCH with COUNT
// 1000 on every master and pipelined UNLINKs, never KEYS — and from every
// other instance's L1. Use EscapePattern for key parts that may hold glob
// characters. It returns how many L2 keys it removed (L1 entries, without
// Redis), and an error wrapping ErrUnavailable when Redis failed; L1 is
// cleared regardless and the rest replayed in the background. Only ctx
// bounds the SCAN (no L2Timeout): if it ends
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
	if err != nil {
		c.deferPattern(pattern)
	}
	return removed, err
}

// invalidatePatternL2 is InvalidatePattern's Redis part: SCAN and UNLINK
// on every master, then tell the other instances.
func (c *Cache) invalidatePatternL2(ctx context.Context, pattern string) (int, error) {
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
	err := c.l2Bulk(ctx, func(ctx context.Context) error {
		switch r := c.rdb.(type) {
		case *redis.ClusterClient:
			return r.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
		case *redis.Ring:
			return r.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
		default:
			return scan(ctx, r)
		}
	})
	// Announce even when the SCAN failed part-way: the other instances
	// must still drop what the caller meant to invalidate.
	if perr := c.publish(ctx, c.message(nil, pattern, nil)); err == nil {
		err = perr
	}
	return int(removed.Load()), err
}

// InvalidateTags removes every key written WithTags(tag) for any of tags —
// reading each tag's set (SMEMBERS) and unlinking its members, O(keys
// tagged) — from L1, L2 and every other instance's L1. It returns how many
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
	if err != nil {
		c.deferTags(tags)
	}
	return removed, err
}

// invalidateTagsL2 is InvalidateTags' Redis part: read the tag sets, drop
// their members here and from L2, and tell the other instances.
func (c *Cache) invalidateTagsL2(ctx context.Context, tags []string) (int, error) {
	var members []string
	err := c.l2Do(ctx, func(ctx context.Context) error {
		cmds, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, t := range tags {
				p.SMembers(ctx, c.tagKey(t))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, cmd := range cmds {
			members = append(members, cmd.(*redis.StringSliceCmd).Val()...)
		}
		return nil
	})
	if err != nil {
		// The members are unknown, but the other instances can still drop
		// the L1 entries they hold with these tags.
		_ = c.publish(ctx, c.message(nil, "", tags))
		return 0, err
	}
	keys := make([]string, 0, len(members))
	for _, m := range members {
		if k, ok := strings.CutPrefix(m, c.cfg.KeyPrefix); ok {
			keys = append(keys, k)
		}
	}
	c.delLocal(keys...)
	unlink := slices.Clip(members)
	for _, t := range tags {
		unlink = append(unlink, c.tagKey(t))
	}
	if err := c.l2UnlinkBulk(ctx, unlink, c.message(keys, "", tags)); err != nil {
		return 0, err
	}
	return len(members), nil
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
	msg, _ := json.Marshal(message{ID: c.id, Flush: true})
	err := c.publish(ctx, msg)
	if err != nil {
		c.deferFlush()
	}
	return err
}

// publish announces msg to the other instances; a nil msg (no Redis, or
// pub/sub off) is not sent.
func (c *Cache) publish(ctx context.Context, msg []byte) error {
	if msg == nil {
		return nil
	}
	return c.l2Do(ctx, func(ctx context.Context) error { return c.rdb.Publish(ctx, c.cfg.Channel, msg).Err() })
}

// l2UnlinkBulk unlinks many keys in pipelines of unlinkBatch, the last one
// carrying msg.
func (c *Cache) l2UnlinkBulk(ctx context.Context, keys []string, msg []byte) error {
	for len(keys) > unlinkBatch {
		if err := c.l2Unlink(ctx, keys[:unlinkBatch], nil); err != nil {
			return err
		}
		keys = keys[unlinkBatch:]
	}
	return c.l2Unlink(ctx, keys, msg)
}
