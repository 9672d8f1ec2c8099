package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// l2Do runs one Redis call or pipeline f behind the breaker, bounded by
// L2Timeout.
func (c *Cache) l2Do(ctx context.Context, f func(ctx context.Context) error) error {
	return c.l2Run(ctx, c.cfg.L2Timeout, f)
}

// l2Bulk runs a multi-round-trip Redis job (SCAN loops) behind the breaker,
// without the per-call L2 timeout: only ctx bounds it.
func (c *Cache) l2Bulk(ctx context.Context, f func(ctx context.Context) error) error {
	return c.l2Run(ctx, 0, f)
}

// l2Run runs f behind the breaker, within timeout when it is positive. A
// miss (redis.Nil) is not an error of Redis, nor is the caller giving up;
// every other failure is counted and wrapped in ErrUnavailable.
func (c *Cache) l2Run(ctx context.Context, timeout time.Duration, f func(ctx context.Context) error) error {
	done, err := c.cb.Allow()
	if err != nil {
		c.st.l2Errors.Add(1)
		c.st.l2Rejected.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if timeout > 0 {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		err = f(tctx)
		cancel()
	} else {
		err = f(ctx)
	}
	if err != nil && ctx.Err() != nil {
		// The caller gave up: not Redis' fault, so not a breaker failure.
		done(context.Canceled)
		return ctx.Err()
	}
	done(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		c.st.l2Errors.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// l2Get returns the raw L2 value of key, or nil on a miss or any failure.
func (c *Cache) l2Get(ctx context.Context, key string) []byte {
	if c.rdb == nil {
		return nil
	}
	var b []byte
	err := c.l2Do(ctx, func(ctx context.Context) error {
		var err error
		b, err = c.rdb.Get(ctx, c.redisKey(key)).Bytes()
		return err
	})
	if err != nil {
		return nil
	}
	return b
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
	var msg []byte
	var keys []string
	if announce {
		keys = make([]string, len(items))
		for i, it := range items {
			keys[i] = it.key
		}
		msg = c.message(keys, "", nil)
	}
	err := c.l2Do(ctx, func(ctx context.Context) error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, it := range items {
				p.Set(ctx, c.redisKey(it.key), it.val, it.ttl)
				for _, t := range it.tags {
					tk := c.tagKey(t)
					p.SAdd(ctx, tk, c.redisKey(it.key))
					p.ExpireNX(ctx, tk, it.ttl)
					p.ExpireGT(ctx, tk, it.ttl)
				}
			}
			if msg != nil {
				p.Publish(ctx, c.cfg.Channel, msg)
			}
			return nil
		})
		return err
	})
	switch {
	case err != nil && announce:
		// L2 and the other instances may still hold the old values: unlink
		// and announce the keys once Redis takes writes again.
		c.deferKeys(keys...)
	case announce:
		c.settled(keys)
	}
	return err
}

// l2Unlink removes keys (one UNLINK each, so a cluster never sees a
// cross-slot command) and announces msg in the same pipeline.
func (c *Cache) l2Unlink(ctx context.Context, redisKeys []string, msg []byte) error {
	if c.rdb == nil {
		return nil
	}
	return c.l2Do(ctx, func(ctx context.Context) error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range redisKeys {
				p.Unlink(ctx, k)
			}
			if msg != nil {
				p.Publish(ctx, c.cfg.Channel, msg)
			}
			return nil
		})
		return err
	})
}

// encode builds an L2 value: header + codec payload (or the error message
// of a negative entry).
func (c *Cache) encode(val any, negErr error, freshUntil time.Time) ([]byte, error) {
	h := header{codec: c.cfg.Codec.ID()}
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
	return append(b, payload...), nil
}

// decoded is an L2 value after decoding.
type decoded[V any] struct {
	val        V
	err        error // cached error of a negative entry
	freshUntil int64 // Unix ms, 0 if none
}

// decode parses an L2 value into V. Anything it did not write, or cannot
// decode into V, is ErrCorrupt.
func decode[V any](c *Cache, b []byte) (d decoded[V], err error) {
	d.err, d.freshUntil, err = decodeInto(c, b, &d.val)
	if err != nil {
		return decoded[V]{}, err
	}
	return d, nil
}

// decodeInto parses an L2 value into *dst, so a batch can decode into one
// slice instead of allocating per value. It returns the cached error of a
// negative entry and the fresh-until time (Unix ms, 0 if none).
func decodeInto[V any](c *Cache, b []byte, dst *V) (negErr error, freshUntil int64, err error) {
	defer func() {
		// A Codec that panics on bad input must not take the caller down.
		if r := recover(); r != nil {
			negErr, freshUntil, err = nil, 0, fmt.Errorf("%w: codec panicked: %v", ErrCorrupt, r)
		}
	}()
	h, payload, err := decodeHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if h.codec != c.cfg.Codec.ID() {
		return nil, 0, fmt.Errorf("%w: codec %d, want %d", ErrCorrupt, h.codec, c.cfg.Codec.ID())
	}
	if h.flags&flagNegative != 0 {
		return &CachedError{Msg: string(payload)}, h.freshUntil, nil
	}
	if err := c.cfg.Codec.Unmarshal(payload, dst); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return nil, h.freshUntil, nil
}

// corrupt counts a rejected L2 value and deletes it so it is not read again.
func (c *Cache) corrupt(ctx context.Context, key string, err error) {
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
