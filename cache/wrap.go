package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Cacheable wraps fn (a @Cacheable decorator, as a function) so its results are read
// through c under key(arg) for ttl (0: Config.TTL), with everything
// GetOrSet does: L1, L2, one load per key across concurrent callers,
// invalidation by Delete / InvalidatePattern / InvalidateTags. An L1 hit
// allocates only what key allocates. The returned func is safe for
// concurrent use.
func Cacheable[A, T any](c *Cache, key func(A) string, ttl time.Duration,
	fn func(context.Context, A) (T, error), opts ...Option) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		k := key(a)
		if e, v, ok := hitL1[T](c, k); ok {
			if e.fresh != 0 && c.stale(e) {
				c.st.staleServed.Add(1)
				refresh(ctx, c, k, ttl, bind(fn, a), opts)
			}
			return v, e.err
		}
		return getOrLoad(ctx, c, k, ttl, bind(fn, a), opts)
	}
}

// bind fixes fn's argument. It is a function of its own so the copy of a
// is made only on the miss path.
func bind[A, T any](fn func(context.Context, A) (T, error), a A) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return fn(ctx, a) }
}

// Memoize wraps fn (a @Memoize decorator, as a function) so its successful result is kept
// in process for ttl (ttl <= 0: for good). Concurrent calls while no result
// is kept share one run of fn, which gets the first caller's context
// without its cancellation; the others return early if their ctx ends.
// Errors are not kept. A panic in fn is re-raised in every caller as a
// *PanicError. It needs no Cache and starts no goroutine; the returned func
// is safe for concurrent use.
func Memoize[T any](ttl time.Duration, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	type result struct {
		val     T
		expires int64 // Unix ns; 0: never
	}
	var (
		cur atomic.Pointer[result]
		mu  sync.Mutex
		inf *call
	)
	return func(ctx context.Context) (T, error) {
		if r := cur.Load(); r != nil && (r.expires == 0 || time.Now().UnixNano() < r.expires) {
			return r.val, nil
		}
		mu.Lock()
		if r := cur.Load(); r != nil && (r.expires == 0 || time.Now().UnixNano() < r.expires) {
			mu.Unlock()
			return r.val, nil
		}
		cl, leader := inf, inf == nil
		if leader {
			cl = &call{done: make(chan struct{})}
			inf = cl
		}
		mu.Unlock()
		if !leader {
			return waitCall[T](ctx, cl)
		}
		v, pnc, err := callLoader(context.WithoutCancel(ctx), fn)
		mu.Lock()
		if err == nil && pnc == nil {
			r := &result{val: v}
			if ttl > 0 {
				r.expires = time.Now().Add(ttl).UnixNano()
			}
			cur.Store(r)
		}
		inf = nil
		mu.Unlock()
		cl.val, cl.err, cl.pnc = v, err, pnc
		close(cl.done)
		if pnc != nil {
			panic(pnc)
		}
		return v, err
	}
}
