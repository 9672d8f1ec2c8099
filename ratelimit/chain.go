package ratelimit

import (
	"context"
	"slices"
	"time"
)

// localChain decides several local tiers of one key atomically: it locks
// the key's shard in every tier (in the Group's lock order, so chains that
// share tiers cannot deadlock), judges all, and counts the events in all or
// none. Other decisions therefore never see a half-counted request, and the
// result is the binding tier's: the denial with the longest wait, or the
// allowed tier with the fewest events left.
type localChain struct {
	tiers []Tier
	ls    []*local // distinct limiters
	lock  []int    // indexes of ls in lock order
}

var _ TieredLimiter = (*localChain)(nil)

func newLocalChain(tiers []Tier, ls []*local) *localChain {
	c := &localChain{tiers: tiers, ls: ls}
	for i := range ls {
		c.lock = append(c.lock, i)
	}
	slices.SortFunc(c.lock, func(a, b int) int { return ls[a].order - ls[b].order })
	return c
}

func (c *localChain) Tiers() []Tier { return c.tiers }

func (c *localChain) Allow(_ context.Context, key string) (Result, error) {
	return c.AllowAt(key, time.Now(), 1)
}

func (c *localChain) AllowN(_ context.Context, key string, n int) (Result, error) {
	return c.AllowAt(key, time.Now(), n)
}

// AllowAt is AllowN at time now.
func (c *localChain) AllowAt(key string, now time.Time, n int) (Result, error) {
	var buf [8]Result
	out := buf[:0]
	if len(c.ls) > len(buf) {
		out = make([]Result, 0, len(c.ls))
	}
	return c.decide(key, now, n, out[:len(c.ls)])
}

// decide fills out (len(c.ls)) with each tier's result and returns the
// binding one.
func (c *localChain) decide(key string, now time.Time, n int, out []Result) (Result, error) {
	for _, l := range c.ls {
		if n < 1 || n > l.burst {
			return Result{Limit: l.burst, Tier: l.name}, ErrInvalidN
		}
	}
	var sbuf [8]*localShard
	var tbuf [8]int64
	shards, tats := sbuf[:0], tbuf[:0]
	if len(c.ls) > len(sbuf) {
		shards, tats = make([]*localShard, 0, len(c.ls)), make([]int64, 0, len(c.ls))
	}
	shards, tats = shards[:len(c.ls)], tats[:len(c.ls)]
	for i, l := range c.ls {
		shards[i] = l.shard(key)
	}
	for _, i := range c.lock {
		shards[i].mu.Lock()
	}
	ok := true
	for i, l := range c.ls {
		t := int64(now.Sub(l.epoch))
		tat := tatOf(shards[i], key, t)
		out[i], tats[i] = l.judge(tat, t, n)
		if !out[i].Allowed {
			ok = false
			tats[i] = tat
		}
	}
	for i, l := range c.ls {
		t := int64(now.Sub(l.epoch))
		switch {
		case ok:
			l.store(shards[i], key, t, tats[i])
		case out[i].Allowed:
			// not counted after all: report the quota as it stays
			out[i].Remaining += n
			out[i].ResetAfter -= time.Duration(l.emission * int64(n))
		}
	}
	for _, i := range slices.Backward(c.lock) {
		shards[i].mu.Unlock()
	}
	return binding(out), nil
}

// Reset forgets key in every tier.
func (c *localChain) Reset(ctx context.Context, key string) error {
	for _, l := range c.ls {
		_ = l.Reset(ctx, key)
	}
	return nil
}

// Refund gives back n events to key in every tier (see local.Refund).
func (c *localChain) Refund(_ context.Context, key string, n int) error {
	if n < 1 || n > c.minBurst() {
		return ErrInvalidN
	}
	c.refund(key, time.Now(), n)
	return nil
}

// refund gives back n events to key in every tier, at most each tier's
// burst (a fallback's divided limit may be below n).
func (c *localChain) refund(key string, now time.Time, n int) {
	for _, l := range c.ls {
		_ = l.RefundAt(key, now, max(min(n, l.burst), 1))
	}
}

// minBurst returns the smallest burst of the chain's tiers.
func (c *localChain) minBurst() int {
	b := c.ls[0].burst
	for _, l := range c.ls[1:] {
		b = min(b, l.burst)
	}
	return b
}
