package cache

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// call is one in-flight load of a key, shared by every caller missing it.
type call struct {
	done chan struct{} // closed when val/err/pnc are set
	val  any
	err  error
	pnc  *PanicError
}

// PanicError is what callers of GetOrSet panic with when the loader
// panicked: the loader's panic value and its stack. All callers sharing the
// load re-raise it; it is never cached.
type PanicError struct {
	Value any
	Stack []byte
}

// Error describes the panic with the loader's stack.
func (p *PanicError) Error() string {
	return fmt.Sprintf("cache: loader panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}

// join returns the in-flight call of key, or registers a new one whose
// caller (leader) must run it. ok is false once the cache is closed.
func (c *Cache) join(key string) (cl *call, leader, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, false, false
	}
	if cl = c.calls[key]; cl != nil {
		return cl, false, true
	}
	cl = &call{done: make(chan struct{})}
	c.calls[key] = cl
	c.wg.Add(1)
	return cl, true, true
}

// forget removes cl from the in-flight calls if it is still key's.
func (c *Cache) forget(key string, cl *call) {
	c.mu.Lock()
	if c.calls[key] == cl {
		delete(c.calls, key)
	}
	c.mu.Unlock()
}

// forgetKeys detaches the in-flight loads of keys (all of them when keys
// is nil): their callers still get their results, but a caller arriving
// after an invalidation starts a new load instead of sharing one that may
// have read the old data.
func (c *Cache) forgetKeys(keys []string) {
	c.mu.Lock()
	if keys == nil {
		clear(c.calls)
	}
	for _, k := range keys {
		delete(c.calls, k)
	}
	c.mu.Unlock()
}

// waitCall waits for cl or for ctx, whichever ends first.
func waitCall[V any](ctx context.Context, cl *call) (V, error) {
	var zero V
	select {
	case <-cl.done:
	default:
		select {
		case <-cl.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	if cl.pnc != nil {
		panic(cl.pnc)
	}
	if cl.err != nil {
		return zero, cl.err
	}
	if cl.val == nil {
		return zero, nil
	}
	v, ok := cl.val.(V)
	if !ok {
		return zero, fmt.Errorf("%w: have %T, want %T", ErrType, cl.val, zero)
	}
	return v, nil
}

// callLoader runs load, turning a panic into a *PanicError.
func callLoader[V any](ctx context.Context, load func(context.Context) (V, error)) (v V, pnc *PanicError, err error) {
	defer func() {
		if r := recover(); r != nil {
			pnc = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	v, err = load(ctx)
	return v, nil, err
}

// runLoad resolves a miss of key for every caller of cl: L2 first, then the
// loader, filling the tiers. It runs in its own goroutine, detached from the
// callers' cancellation, bounded by LoadTimeout. refresh is set for a
// stale-while-revalidate refresh nobody waits for.
func runLoad[V any](parent context.Context, c *Cache, key string, cl *call, ttl time.Duration,
	load func(context.Context) (V, error), o *itemOptions, refresh bool) {
	defer c.wg.Done()
	finished := false
	// finish hands the result to the waiting callers. Unless keep is set
	// (a stale value served while the refresh goes on), the call leaves
	// the map first, so a caller arriving later starts afresh.
	finish := func(val any, err error, pnc *PanicError, keep bool) {
		if !finished {
			finished = true
			if !keep {
				c.forget(key, cl)
			}
			cl.val, cl.err, cl.pnc = val, err, pnc
			close(cl.done)
		}
	}
	defer c.forget(key, cl)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.cfg.LoadTimeout)
	defer cancel()

	snap := c.snapshot(key)
	l1TTL, l2TTL := c.ttls(ttl, o)
	if b := c.l2Get(ctx, key); b != nil {
		d, err := decode[V](c, b)
		if err != nil {
			c.corrupt(ctx, key, err)
		} else {
			stale := c.fillFromL2(key, d.val, d.err, d.freshUntil, l1TTL, snap)
			if !refresh {
				c.st.l2Hits.Add(1)
				if d.err != nil {
					c.st.negativeHits.Add(1)
				}
				if stale {
					c.st.staleServed.Add(1)
				}
			}
			finish(d.val, d.err, nil, stale)
			if !stale {
				return
			}
		}
	}
	if !finished && !refresh {
		c.st.misses.Add(1)
	}

	c.st.loads.Add(1)
	start := time.Now()
	v, pnc, err := callLoader(ctx, load)
	c.met.recordLoad(time.Since(start), errOrPanic(err, pnc))
	switch {
	case pnc != nil:
		c.st.loadErrors.Add(1)
		if finished || refresh {
			c.cfg.Logger.Error("cache: background load panicked", "cache", c.cfg.Name, "key", key, "panic", pnc.Value)
		}
		finish(nil, nil, pnc, false)
	case err != nil:
		c.st.loadErrors.Add(1)
		if !finished && c.cfg.NegativeTTL > 0 && c.cfg.IsNegative(err) {
			c.store(ctx, key, nil, err, c.jitter(c.cfg.NegativeTTL), c.jitter(c.cfg.NegativeTTL), o, snap, false)
		}
		if finished || refresh {
			// A stale value stays in place; the next stale read retries.
			c.cfg.Logger.Warn("cache: background refresh failed", "cache", c.cfg.Name, "key", key, "err", err)
		}
		finish(nil, err, nil, false)
	default:
		c.store(ctx, key, v, nil, l1TTL, l2TTL, o, snap, false)
		finish(v, nil, nil, false)
	}
}

func errOrPanic(err error, pnc *PanicError) error {
	if pnc != nil {
		return pnc
	}
	return err
}

// fillFromL2 fills L1 from an L2 hit and reports whether the value is stale.
func (c *Cache) fillFromL2(key string, val any, negErr error, freshUntilMs int64, l1TTL time.Duration, snap uint64) bool {
	e := &entry{key: key, val: val, err: negErr}
	ttl := l1TTL
	if negErr != nil && c.cfg.NegativeTTL > 0 {
		ttl = min(ttl, c.cfg.NegativeTTL)
	}
	stale := false
	if freshUntilMs != 0 && c.cfg.StaleFor > 0 {
		now := c.cfg.Now()
		fresh := time.UnixMilli(freshUntilMs)
		if lim := now.Add(ttl); fresh.After(lim) {
			fresh = lim
		}
		e.fresh = fresh.UnixNano()
		stale = !now.Before(fresh)
		ttl = max(fresh.Sub(now), 0) + c.cfg.StaleFor
	}
	c.fillL1(e, ttl, snap)
	return stale
}

// store writes a loaded (or explicitly set) value to L1 and L2 unless key
// was invalidated since snap. announce tells the other instances.
func (c *Cache) store(ctx context.Context, key string, val any, negErr error, l1TTL, l2TTL time.Duration,
	o *itemOptions, snap uint64, announce bool) error {
	if c.snapshot(key) != snap {
		return nil
	}
	e, ttl := c.newEntry(key, val, negErr, l1TTL, o)
	c.fillL1(e, ttl, snap)
	if c.rdb == nil {
		return nil
	}
	var fresh time.Time
	if c.cfg.StaleFor > 0 && negErr == nil {
		fresh = c.cfg.Now().Add(l2TTL)
		l2TTL += c.cfg.StaleFor
	}
	b, err := c.encode(val, negErr, fresh)
	if err != nil {
		return err
	}
	it := l2Item{key: key, val: b, ttl: l2TTL}
	if o != nil {
		it.tags = o.tags
	}
	return c.l2Set(ctx, []l2Item{it}, announce)
}
