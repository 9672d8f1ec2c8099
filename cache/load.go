package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/servio/perfkit/internal/redact"
)

// call is one in-flight load of a key, shared by every caller missing it.
type call struct {
	done chan struct{} // closed when val/err/pnc are set
	tags []string      // the tags its fill will carry (set at join)
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
func (c *Cache) join(key string, o *itemOptions) (cl *call, leader, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, false, false
	}
	if cl = c.calls[key]; cl != nil {
		return cl, false, true
	}
	cl = &call{done: make(chan struct{})}
	if o != nil {
		cl.tags = o.tags
	}
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

// forgetKeys detaches the in-flight loads of keys: their callers still
// get their results, but a caller arriving after an invalidation starts a
// new load instead of sharing one that may have read the old data.
func (c *Cache) forgetKeys(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	for _, k := range keys {
		delete(c.calls, k)
	}
	c.mu.Unlock()
}

// forgetAll detaches every in-flight load (a flush).
func (c *Cache) forgetAll() {
	c.mu.Lock()
	clear(c.calls)
	c.mu.Unlock()
}

// forgetWhere detaches the in-flight loads for which f is true.
func (c *Cache) forgetWhere(f func(string, *call) bool) {
	c.mu.Lock()
	for k, cl := range c.calls {
		if f(k, cl) {
			delete(c.calls, k)
		}
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

// miss is the resolution of one miss of key, shared by every caller of cl:
// L2 first, then the loader, filling the tiers.
type miss[V any] struct {
	c            *Cache
	key          string
	cl           *call
	load         func(context.Context) (V, error)
	o            *itemOptions
	parent       context.Context // values only: its cancellation is dropped
	refresh      bool            // a stale-while-revalidate refresh nobody waits for
	snap         uint64
	obs          observation // what L2 held before the load (for its fill)
	l1TTL, l2TTL time.Duration
	finished     bool
}

func newMiss[V any](ctx context.Context, c *Cache, key string, cl *call, ttl time.Duration,
	load func(context.Context) (V, error), o *itemOptions, refresh bool) *miss[V] {
	m := &miss[V]{c: c, key: key, cl: cl, load: load, o: o, parent: context.WithoutCancel(ctx), refresh: refresh}
	m.snap = c.snapshot(key) // before any read: an invalidation after it wins
	m.l1TTL, m.l2TTL = c.ttls(ttl, o)
	return m
}

// finish hands the result to the waiting callers. Unless keep is set (a
// stale value served while the refresh goes on), the call leaves the map
// first, so a caller arriving later starts afresh.
func (m *miss[V]) finish(val any, err error, pnc *PanicError, keep bool) {
	if m.finished {
		return
	}
	m.finished = true
	if !keep {
		m.c.forget(m.key, m.cl)
	}
	m.cl.val, m.cl.err, m.cl.pnc = val, err, pnc
	close(m.cl.done)
}

// fromL2 looks the key up in L2 and reports whether that resolved the miss
// (a fresh hit). A stale hit is handed to the callers but leaves the load
// to run. It runs in the leader's goroutine — an L2 hit costs no goroutine
// hop — bounded by RedisTimeout but not by the leader's cancellation.
func (m *miss[V]) fromL2() bool {
	c := m.c
	b, err := c.l2Read(m.parent, m.key)
	if err != nil {
		return false // no observation: the load will not fill L2
	}
	if b == nil {
		m.obs = c.observe(m.parent, m.key, nil)
		return false
	}
	d, err := decode[V](c, b)
	if err != nil {
		c.corrupt(m.parent, m.key, err)
		if errors.Is(err, errTombstone) {
			m.obs = c.observe(m.parent, m.key, b)
		}
		return false
	}
	stale := c.fillFromL2(m.key, d.val, d.err, d.freshUntil, d.tags, m.l1TTL, m.snap)
	if !m.refresh {
		c.st.l2Hits.Add(1)
		if d.err != nil {
			c.st.negativeHits.Add(1)
		}
		if stale {
			c.st.staleServed.Add(1)
		}
	}
	m.finish(d.val, d.err, nil, stale)
	if stale {
		m.obs = c.observe(m.parent, m.key, b)
	}
	return !stale
}

// fromLoader runs the loader, detached from the callers' cancellation and
// bounded by LoadTimeout, and stores its result. It runs in its own
// goroutine, counted in c.wg.
func (m *miss[V]) fromLoader() {
	c := m.c
	defer c.wg.Done()
	defer c.forget(m.key, m.cl)
	ctx, cancel := context.WithTimeout(m.parent, c.cfg.LoadTimeout)
	defer cancel()
	if !m.finished && !m.refresh {
		c.st.misses.Add(1)
	}
	c.st.loads.Add(1)
	start := time.Now()
	v, pnc, err := callLoader(ctx, m.load)
	c.met.recordLoad(time.Since(start), errOrPanic(err, pnc))
	switch {
	case pnc != nil:
		c.st.loadErrors.Add(1)
		if m.finished || m.refresh {
			c.cfg.Logger.Error("cache: background load panicked", "cache", c.cfg.Name, "key", m.key, "panic", redact.String(fmt.Sprint(pnc.Value)))
		}
		m.finish(nil, nil, pnc, false)
	case err != nil:
		c.st.loadErrors.Add(1)
		if !m.finished && c.cfg.NegativeTTL > 0 && c.cfg.IsNegative(err) {
			neg := c.jitter(c.cfg.NegativeTTL)
			_ = c.fill(ctx, m.key, nil, err, neg, neg, m.o, m.snap, m.obs)
		}
		if m.finished || m.refresh {
			// A stale value stays in place; the next stale read retries.
			// A loader's error may quote a URL with a key: redacted.
			c.cfg.Logger.Warn("cache: background refresh failed", "cache", c.cfg.Name, "key", m.key, "err", redact.String(err.Error()))
		}
		m.finish(nil, err, nil, false)
	default:
		if err := c.fill(ctx, m.key, v, nil, m.l1TTL, m.l2TTL, m.o, m.snap, m.obs); err != nil && !errors.Is(err, ErrUnavailable) {
			c.cfg.Logger.Warn("cache: loaded value not cached in L2", "cache", c.cfg.Name, "key", m.key, "err", redact.String(err.Error()))
		}
		m.finish(v, nil, nil, false)
	}
}

func errOrPanic(err error, pnc *PanicError) error {
	if pnc != nil {
		return pnc
	}
	return err
}

// fillFromL2 fills L1 from an L2 hit and reports whether the value is stale.
func (c *Cache) fillFromL2(key string, val any, negErr error, freshUntilMs int64, tags []string, l1TTL time.Duration, snap uint64) bool {
	e, ttl, stale := c.l2Entry(key, val, negErr, freshUntilMs, tags, l1TTL)
	c.fillL1(e, ttl, snap)
	return stale
}

// l2Entry builds the L1 entry of an L2 hit: its TTL (capped by NegativeTTL
// for a negative entry, by the L2 fresh-until time plus StaleFor for a
// value with a stale window) and whether it is already stale.
func (c *Cache) l2Entry(key string, val any, negErr error, freshUntilMs int64, tags []string, l1TTL time.Duration) (*entry, time.Duration, bool) {
	e := &entry{key: key, val: val, err: negErr, tags: tags}
	ttl := l1TTL
	if negErr != nil && c.cfg.NegativeTTL > 0 {
		ttl = min(ttl, c.cfg.NegativeTTL)
	}
	if freshUntilMs == 0 || c.cfg.StaleFor <= 0 {
		return e, ttl, false
	}
	now := c.cfg.Now()
	fresh := time.UnixMilli(freshUntilMs)
	if lim := now.Add(ttl); fresh.After(lim) {
		fresh = lim
	}
	e.fresh = fresh.UnixNano()
	return e, max(fresh.Sub(now), 0) + c.cfg.StaleFor, !now.Before(fresh)
}

// fill writes a loaded value (or a negative entry) to L2 and L1 unless
// key was invalidated since the miss began: locally (snap) or in Redis
// (obs: the value the miss observed there was replaced, or the
// invalidation epoch changed — see fillScript). Without an observation
// (Redis failed) only L1 is filled. A value that cannot be encoded is
// still cached in L1, and the codec's error returned.
func (c *Cache) fill(ctx context.Context, key string, val any, negErr error, l1TTL, l2TTL time.Duration,
	o *itemOptions, snap uint64, obs observation) error {
	if c.snapshot(key) != snap {
		return nil
	}
	var encErr error
	if c.rdb != nil && obs.ok {
		var it l2Item
		if it, encErr = c.newL2Item(key, val, negErr, l2TTL, o); encErr == nil {
			if ok, err := c.l2Fill(ctx, it, obs); err == nil && !ok {
				return nil // something newer is in L2: this value is stale
			}
		}
	}
	if negErr != nil {
		// Read back as from L2, so both tiers answer alike.
		negErr = &CachedError{Msg: negErr.Error()}
	}
	e, ttl := c.newEntry(key, val, negErr, l1TTL, o)
	c.fillL1(e, ttl, snap)
	return encErr
}

// newL2Item encodes an L2 write of key for ttl. With StaleFor a value (not
// a negative entry) is kept StaleFor longer, its header saying when it
// turns stale.
func (c *Cache) newL2Item(key string, val any, negErr error, ttl time.Duration, o *itemOptions) (l2Item, error) {
	var fresh time.Time
	if c.cfg.StaleFor > 0 && negErr == nil {
		fresh = c.cfg.Now().Add(ttl)
		ttl += c.cfg.StaleFor
	}
	var tags []string
	if o != nil {
		tags = o.tags
	}
	b, err := c.encodeTagged(val, negErr, fresh, tags)
	if err != nil {
		return l2Item{}, err
	}
	it := l2Item{key: key, val: b, ttl: ttl}
	if o != nil {
		it.tags = o.tags
	}
	return it, nil
}
