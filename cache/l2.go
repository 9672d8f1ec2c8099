package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// l2Get returns the raw L2 value of key, or nil on a miss or any failure.
func (c *Cache) l2Get(ctx context.Context, key string) []byte {
	b, _ := c.l2Read(ctx, key)
	return b
}

// l2Read returns the raw L2 value of key: nil with a nil error on a miss,
// nil with an error when Redis failed.
func (c *Cache) l2Read(ctx context.Context, key string) ([]byte, error) {
	if c.rdb == nil {
		return nil, errNoRedis
	}
	var b []byte
	rk := c.redisKey(key)
	err := c.l2Do(ctx, rk, func(ctx context.Context) error {
		var err error
		b, err = c.rdb.Get(ctx, rk).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

var errNoRedis = errors.New("cache: no redis")

// newToken returns a write token: random, so two writes never share one.
func newToken() uint64 {
	for {
		if t := mrand.Uint64(); t != 0 {
			return t
		}
	}
}

func tokenString(t uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], t)
	return string(b[:])
}

// fillScript is a load's conditional write of its value (the lease of
// Facebook's memcache, with the token of the last write as the lease): it
// sets KEYS[1] only if the token of the value there (ARGV[1]; "" for no
// value) is still the one the load observed when it missed, and the
// invalidation epoch KEYS[2] (in KEYS[1]'s slot on a cluster) is still
// ARGV[4]. A Set, a
// Delete's tombstone, another fill or a pattern/tag invalidation after
// the observation makes it a no-op, so a load's value never lands after
// an invalidation that followed its read. ARGV[2] is the value, ARGV[3]
// its TTL in ms.
var fillScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local tok = ''
if cur then tok = string.sub(cur, 14, 21) end
if tok ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// observation is what a miss saw in L2 before its load: the token of the
// value there ("" for none) and the invalidation epoch. ok is false when
// Redis could not be read: the load then does not fill L2.
type observation struct {
	token, epoch string
	ok           bool
}

// observe completes a miss's observation of key once it read raw (nil: no
// value) from L2: it reads the epoch guarding key.
func (c *Cache) observe(ctx context.Context, key string, raw []byte) observation {
	o := observation{}
	if len(raw) >= headerLen {
		o.token = string(raw[tokenOffset:headerLen])
	} else if raw != nil {
		return o
	}
	var err error
	if o.epoch, err = c.l2Epoch(ctx, c.redisKey(key)); err != nil {
		return o
	}
	o.ok = true
	return o
}

// l2Fill writes a loaded value to L2 if nothing changed key since obs
// (see fillScript), adding the key to its tag sets first: a tag
// invalidation that took the set before the add changed the epoch, so
// the fill is refused, and one that takes it after finds the key.
// It reports whether the value was written.
func (c *Cache) l2Fill(ctx context.Context, it l2Item, obs observation) (bool, error) {
	var ok bool
	err := c.l2Do(ctx, c.redisKey(it.key), func(ctx context.Context) error {
		if len(it.tags) > 0 {
			if _, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				c.addTags(ctx, p, it)
				return nil
			}); err != nil {
				return err
			}
		}
		rk := c.redisKey(it.key)
		n, err := fillScript.Run(ctx, c.rdb, []string{rk, c.epochKeyFor(rk)}, obs.token, it.val, it.ttl.Milliseconds(), obs.epoch).Int()
		ok = n == 1
		return err
	})
	return ok, err
}

func (c *Cache) addTags(ctx context.Context, p redis.Pipeliner, it l2Item) {
	for _, t := range it.tags {
		tk := c.tagKey(t)
		p.SAdd(ctx, tk, c.redisKey(it.key))
		p.ExpireNX(ctx, tk, it.ttl)
		p.ExpireGT(ctx, tk, it.ttl)
	}
}

// l2Item is one value to write to L2.
type l2Item struct {
	key  string
	val  []byte
	ttl  time.Duration
	tags []string
}

// l2Set writes items in one pipeline (split per node by a cluster client),
// adds them to their tag sets and, when announce is set, tells the other
// instances to drop the keys from their L1.
func (c *Cache) l2Set(ctx context.Context, items []l2Item, announce bool) error {
	if c.rdb == nil {
		return nil
	}
	if announce {
		c.replayMu.RLock() // a replay of an older invalidation lands before, not after
		defer c.replayMu.RUnlock()
	}
	var msg []byte
	var keys []string
	if announce {
		keys = make([]string, len(items))
		for i, it := range items {
			keys[i] = it.key
		}
		msg = c.message(keys, "", nil)
	}
	rkeys := make([]string, len(items))
	for i, it := range items {
		rkeys[i] = c.redisKey(it.key)
	}
	// The value first, then its tags: an InvalidateTags that takes a tag
	// set in between finds the key in the set afterwards. A cluster client
	// runs a pipeline's nodes concurrently, so there the tags follow in a
	// second round trip (counted in the breaker of the values' node).
	tagged := false
	for _, it := range items {
		tagged = tagged || len(it.tags) > 0
	}
	split := tagged && c.clustered()
	var after func(ctx context.Context, idx []int) error
	if split {
		after = func(ctx context.Context, idx []int) error {
			_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, i := range idx {
					c.addTags(ctx, p, items[i])
				}
				return nil
			})
			if err != nil {
				// The values are in L2 but (some) not in their tag sets, whose
				// master failed: an InvalidateTags after this Set returned
				// would miss them until the replay. Take them back at once
				// with tombstones on their own master, which just took the
				// write; the replay still covers a failure here.
				ttl := c.tombstoneTTL()
				tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.RedisTimeout)
				defer cancel()
				_, _ = c.rdb.Pipelined(tctx, func(p redis.Pipeliner) error {
					for _, i := range idx {
						h := header{codec: c.cfg.Codec.ID(), flags: flagTombstone, token: newToken()}
						p.Set(tctx, rkeys[i], appendHeader(make([]byte, 0, headerLen), h), ttl)
					}
					return nil
				})
			}
			return err
		}
	}
	failed, err := c.l2Pipe(ctx, rkeys, msg, func(ctx context.Context, p redis.Pipeliner, idx []int) {
		for _, i := range idx {
			it := items[i]
			p.Set(ctx, rkeys[i], it.val, it.ttl)
			if !split {
				c.addTags(ctx, p, it)
			}
		}
	}, after)
	if announce {
		// Per node: the keys whose node took the write are settled; those
		// of a node that failed may still hold the old value in L2 (and the
		// other instances in L1): unlink and announce them once their node
		// takes writes again.
		bad, good := splitKeys(keys, failed)
		c.settled(good)
		if len(bad) > 0 {
			c.deferKeys(bad...)
		}
	}
	return err
}

// l2Unlink removes keys (one UNLINK each, so a cluster never sees a
// cross-slot command) and announces msg in the same pipeline.
func (c *Cache) l2Unlink(ctx context.Context, redisKeys []string, msg []byte) error {
	if c.rdb == nil {
		return nil
	}
	_, err := c.l2Pipe(ctx, redisKeys, msg, func(ctx context.Context, p redis.Pipeliner, idx []int) {
		for _, i := range idx {
			p.Unlink(ctx, redisKeys[i])
		}
	}, nil)
	return err
}

// l2Tombstone replaces keys (Redis keys) by tombstones — one SET each, so
// a cluster never sees a cross-slot command — and announces msg in the
// same pipeline (see l2Pipe). A tombstone reads as a miss; its fresh
// token makes the fill of every load that observed the key before it fail
// (fillScript). It lives tombstoneTTL: longer than any load may take to
// fill. It returns the indexes in redisKeys of the keys whose node failed.
func (c *Cache) l2Tombstone(ctx context.Context, redisKeys []string, msg []byte) ([]int, error) {
	if c.rdb == nil {
		return nil, nil
	}
	ttl := c.tombstoneTTL()
	return c.l2Pipe(ctx, redisKeys, msg, func(ctx context.Context, p redis.Pipeliner, idx []int) {
		for _, i := range idx {
			h := header{codec: c.cfg.Codec.ID(), flags: flagTombstone, token: newToken()}
			p.Set(ctx, redisKeys[i], appendHeader(make([]byte, 0, headerLen), h), ttl)
		}
	}, nil)
}

// tombstoneTTL outlives every fill a load may still send: a miss observes
// L2 within RedisTimeout, loads within LoadTimeout and fills before its
// context ends; doubled for queues and clock drift.
func (c *Cache) tombstoneTTL() time.Duration {
	return 2*(c.cfg.LoadTimeout+c.cfg.RedisTimeout) + time.Second
}

// encode builds an L2 value: header + codec payload (or the error message
// of a negative entry).
func (c *Cache) encode(val any, negErr error, freshUntil time.Time) ([]byte, error) {
	return c.encodeTagged(val, negErr, freshUntil, nil)
}

// encodeTagged is encode with the value's tags, which an instance that
// reads the value from L2 keeps with its L1 copy (so its own tag
// invalidations find it).
func (c *Cache) encodeTagged(val any, negErr error, freshUntil time.Time, tags []string) ([]byte, error) {
	h := header{codec: c.cfg.Codec.ID(), token: newToken()}
	if len(tags) > 0 {
		h.flags |= flagTags
	}
	if !freshUntil.IsZero() {
		h.freshUntil = freshUntil.UnixMilli()
	}
	var payload []byte
	if negErr != nil {
		h.flags |= flagNegative
		payload = []byte(negErr.Error())
	} else {
		var err error
		if payload, err = c.cfg.Codec.Marshal(val); err != nil {
			return nil, fmt.Errorf("cache: encode: %w", err)
		}
	}
	b := make([]byte, 0, headerLen+len(payload))
	b = appendHeader(b, h)
	if len(tags) > 0 {
		b = appendTags(b, tags)
	}
	return append(b, payload...), nil
}

// decoded is an L2 value after decoding.
type decoded[V any] struct {
	val        V
	err        error // cached error of a negative entry
	freshUntil int64 // Unix ms, 0 if none
	tags       []string
}

// decode parses an L2 value into V. Anything it did not write, or cannot
// decode into V, is ErrCorrupt.
func decode[V any](c *Cache, b []byte) (d decoded[V], err error) {
	d.err, d.freshUntil, d.tags, err = decodeInto(c, b, &d.val)
	if err != nil {
		return decoded[V]{}, err
	}
	return d, nil
}

// decodeInto parses an L2 value into *dst, so a batch can decode into one
// slice instead of allocating per value. It returns the cached error of a
// negative entry and the fresh-until time (Unix ms, 0 if none).
func decodeInto[V any](c *Cache, b []byte, dst *V) (negErr error, freshUntil int64, tags []string, err error) {
	defer func() {
		// A Codec that panics on bad input must not take the caller down.
		if r := recover(); r != nil {
			negErr, freshUntil, tags, err = nil, 0, nil, fmt.Errorf("%w: codec panicked: %v", ErrCorrupt, r)
		}
	}()
	h, payload, err := decodeHeader(b)
	if err != nil {
		return nil, 0, nil, err
	}
	if h.codec != c.cfg.Codec.ID() {
		return nil, 0, nil, fmt.Errorf("%w: codec %d, want %d", ErrCorrupt, h.codec, c.cfg.Codec.ID())
	}
	if h.flags&flagTombstone != 0 {
		return nil, 0, nil, errTombstone
	}
	if h.flags&flagTags != 0 {
		if tags, payload, err = splitTags(payload); err != nil {
			return nil, 0, nil, err
		}
	}
	if h.flags&flagNegative != 0 {
		return &CachedError{Msg: string(payload)}, h.freshUntil, tags, nil
	}
	if err := c.cfg.Codec.Unmarshal(payload, dst); err != nil {
		return nil, 0, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil, h.freshUntil, tags, nil
}

// errTombstone is decodeInto's answer for a tombstone: a miss, not corrupt.
var errTombstone = errors.New("cache: tombstone")

// corrupt counts a rejected L2 value and deletes it so it is not read again.
func (c *Cache) corrupt(ctx context.Context, key string, err error) {
	if errors.Is(err, errTombstone) {
		return
	}
	c.st.corrupt.Add(1)
	c.cfg.Logger.Warn("cache: dropping corrupt L2 value", "cache", c.cfg.Name, "key", key, "err", err)
	_ = c.l2Unlink(ctx, []string{c.redisKey(key)}, nil)
}

// CachedError is the error a negative entry read from L2 carries: the
// message of the loader's error. It matches ErrNotFound with errors.Is (L1
// negative entries return the loader's own error).
type CachedError struct{ Msg string }

// Error returns the cached message.
func (e *CachedError) Error() string { return e.Msg }

// Is reports whether target is ErrNotFound.
func (e *CachedError) Is(target error) bool { return target == ErrNotFound }
