package cache

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"
)

// maxPendingKeys bounds the keys kept for a retried invalidation; beyond
// it the other instances are flushed instead (see deferKeys).
const maxPendingKeys = 10_000

// Retry delays of pending invalidations: doubling from the first to the
// last. While the breaker is open an attempt costs nothing (it is refused
// at once), so the last delay is short: the first attempt after the
// breaker lets a probe through carries the backlog.
const (
	pendingFirstDelay = 100 * time.Millisecond
	pendingMaxDelay   = time.Second
)

// pending holds the invalidations whose Redis part failed — the breaker
// was open, Redis was down or slow, the caller gave up — so that L2 and
// the other instances' L1 still get them once Redis takes writes again.
// Without it, an invalidation made while this instance's breaker is open
// (which lasts BreakerOpenFor, also after Redis is back) would be lost:
// the other instances would serve the old value until their L1 TTL, and
// L2 until its TTL.
type pending struct {
	mu       sync.Mutex
	keys     map[string]struct{}
	patterns map[string]struct{}
	tags     map[string]struct{}
	flush    bool // tell the other instances to flush their L1
	kick     chan struct{}
}

// deferKeys queues keys whose UNLINK and announcement failed. Past
// maxPendingKeys the keys are dropped and the other instances will be
// flushed instead; L2 then keeps their old values until their TTL.
func (c *Cache) deferKeys(keys ...string) {
	p := &c.pend
	p.mu.Lock()
	for _, k := range keys {
		if len(p.keys) >= maxPendingKeys {
			if !p.flush {
				c.cfg.Logger.Warn("cache: too many invalidations waiting for Redis; the other instances will be flushed instead",
					"cache", c.cfg.Name, "pending", len(p.keys))
			}
			p.flush = true
			break
		}
		p.keys[k] = struct{}{}
	}
	p.mu.Unlock()
	c.kickPending()
}

func (c *Cache) deferPattern(pattern string) {
	c.deferIn(func(p *pending) { p.patterns[pattern] = struct{}{} })
}

func (c *Cache) deferTags(tags []string) {
	c.deferIn(func(p *pending) {
		for _, t := range tags {
			p.tags[t] = struct{}{}
		}
	})
}

func (c *Cache) deferFlush() { c.deferIn(func(p *pending) { p.flush = true }) }

func (c *Cache) deferIn(add func(*pending)) {
	c.pend.mu.Lock()
	add(&c.pend)
	c.pend.mu.Unlock()
	c.kickPending()
}

func (c *Cache) kickPending() {
	select {
	case c.pend.kick <- struct{}{}:
	default:
	}
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
			}
			if c.replayPending(ctx) {
				break
			}
		}
	}
}

// replayPending tries every pending invalidation once, requeues the ones
// that fail again and reports whether none is left.
func (c *Cache) replayPending(ctx context.Context) bool {
	p := &c.pend
	p.mu.Lock()
	keys, patterns, tags, flush := p.keys, p.patterns, p.tags, p.flush
	p.keys, p.patterns, p.tags, p.flush = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}, false
	p.mu.Unlock()

	var failedKeys, failedPatterns, failedTags []string
	if len(keys) > 0 {
		ks := slices.Collect(maps.Keys(keys))
		if c.unlinkAndAnnounce(ctx, ks) != nil {
			failedKeys = ks
		}
	}
	for pat := range patterns {
		if _, err := c.invalidatePatternL2(ctx, pat); err != nil {
			failedPatterns = append(failedPatterns, pat)
		}
	}
	if len(tags) > 0 {
		ts := slices.Collect(maps.Keys(tags))
		if _, err := c.invalidateTagsL2(ctx, ts); err != nil {
			failedTags = ts
		}
	}
	if flush {
		msg, _ := json.Marshal(message{ID: c.id, Flush: true})
		flush = c.publish(ctx, msg) != nil
	}
	if failedKeys == nil && failedPatterns == nil && failedTags == nil && !flush {
		c.st.replayed.Add(uint64(len(keys) + len(patterns) + len(tags)))
		return true
	}
	p.mu.Lock()
	for _, k := range failedKeys {
		p.keys[k] = struct{}{}
	}
	for _, pat := range failedPatterns {
		p.patterns[pat] = struct{}{}
	}
	for _, t := range failedTags {
		p.tags[t] = struct{}{}
	}
	p.flush = p.flush || flush
	p.mu.Unlock()
	return false
}
