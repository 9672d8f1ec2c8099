package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/cache"
)

// newL1 returns an L1-only cache closed when the test ends.
func newL1(t *testing.T, cfg cache.Config) *cache.Cache {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c, err := cache.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]cache.Config{
		"negative entries":          {MaxEntries: -1},
		"negative L1TTL":            {L1TTL: -time.Second},
		"negative TTL":              {TTL: -time.Second},
		"jitter above 1":            {TTLJitter: 1.5},
		"negative timeout":          {RedisTimeout: -1},
		"negative breaker failures": {BreakerConsecutiveFailures: -1},
	} {
		_, err := cache.New(cfg)
		assert.ErrorIs(t, err, cache.ErrInvalidConfig, name)
	}
}

func TestZeroConfigIsL1Cache(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	ctx := t.Context()

	_, err := cache.Get[string](ctx, c, "k")
	require.ErrorIs(t, err, cache.ErrMiss)
	require.NoError(t, cache.Set(ctx, c, "k", "v", 0))
	got, err := cache.Get[string](ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", got)

	require.NoError(t, c.Delete(ctx, "k"))
	_, err = cache.Get[string](ctx, c, "k")
	assert.ErrorIs(t, err, cache.ErrMiss)
}

func TestGetOrSetLoadsOnceThenHitsL1(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	var calls atomic.Int32
	load := func(context.Context) (int, error) { calls.Add(1); return 42, nil }
	for range 3 {
		v, err := cache.GetOrSet(t.Context(), c, "answer", 0, load)
		require.NoError(t, err)
		assert.Equal(t, 42, v)
	}
	// The next Get sees the value although ristretto's Set is asynchronous.
	v, err := cache.Get[int](t.Context(), c, "answer")
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	assert.Equal(t, int32(1), calls.Load(), "loader calls")
	st := c.Stats()
	assert.Equal(t, uint64(3), st.L1Hits)
	assert.Equal(t, uint64(1), st.Misses)
	assert.Equal(t, uint64(1), st.Loads)
}

func TestStampedeRunsLoaderOnce(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	var calls atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (string, error) {
		calls.Add(1)
		<-release
		return "menu", nil
	}
	const n = 1000
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = cache.GetOrSet(t.Context(), c, "menu:1", 0, load) })
	}
	// Every other caller joins the one load before it finishes.
	require.Eventually(t, func() bool { return c.Stats().SharedLoads == n-1 }, settle, time.Millisecond)
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), calls.Load(), "loader calls for %d concurrent callers", n)
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, "menu", results[i])
	}
}

func TestLoaderErrorSharedAndNotCached(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	boom := errors.New("db down")
	var calls atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, error) { calls.Add(1); <-release; return 0, boom }
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { _, errs[i] = cache.GetOrSet(t.Context(), c, "k", 0, load) })
	}
	require.Eventually(t, func() bool { return calls.Load() == 1 && c.Stats().SharedLoads == 9 }, settle, time.Millisecond)
	close(release)
	wg.Wait()
	for _, err := range errs {
		assert.ErrorIs(t, err, boom)
	}
	v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, err, "error must not be cached")
	assert.Equal(t, 7, v)
}

func TestLoaderPanicReraised(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	load := func(context.Context) (int, error) { panic("kaboom") }
	var pe *cache.PanicError
	func() {
		defer func() {
			r := recover()
			require.NotNil(t, r, "want a panic")
			var ok bool
			pe, ok = r.(*cache.PanicError)
			require.True(t, ok, "want *PanicError, got %T", r)
		}()
		_, _ = cache.GetOrSet(t.Context(), c, "k", 0, load)
	}()
	assert.Equal(t, "kaboom", pe.Value)
	assert.Contains(t, string(pe.Stack), "TestLoaderPanicReraised")
	v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { return 1, nil })
	require.NoError(t, err, "panic must not be cached")
	assert.Equal(t, 1, v)
}

func TestCallerCancellationDoesNotCancelLoad(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	started := make(chan struct{})
	release := make(chan struct{})
	var loadErr atomic.Value
	load := func(ctx context.Context) (string, error) {
		close(started)
		<-release
		loadErr.Store(fmt.Sprint(ctx.Err()))
		return "v", nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := cache.GetOrSet(ctx, c, "k", 0, load); done <- err }()
	<-started
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled, "cancelled caller returns at once")

	// A second caller shares the still-running load and gets its value.
	got := make(chan string, 1)
	go func() { v, _ := cache.GetOrSet(t.Context(), c, "k", 0, load); got <- v }()
	require.Eventually(t, func() bool { return c.Stats().SharedLoads == 1 }, settle, time.Millisecond)
	close(release)
	assert.Equal(t, "v", <-got)
	assert.Equal(t, "<nil>", loadErr.Load(), "loader ctx must not be cancelled by the first caller")

	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	_, err := cache.GetOrSet(cctx, c, "other", 0, load)
	assert.ErrorIs(t, err, context.Canceled, "already-cancelled ctx")
}

func TestLoaderHasOwnTimeout(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{LoadTimeout: 20 * time.Millisecond})
	_, err := cache.GetOrSet(t.Context(), c, "slow", 0, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWrongTypeIsMissNotWrongValue(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	require.NoError(t, cache.Set(t.Context(), c, "k", "a string", 0))
	_, err := cache.Get[int](t.Context(), c, "k")
	assert.ErrorIs(t, err, cache.ErrMiss)
	v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { return 5, nil })
	require.NoError(t, err)
	assert.Equal(t, 5, v)
}

func TestCapacityIsHonest(t *testing.T) {
	t.Parallel()
	const n = 2000
	c := newL1(t, cache.Config{MaxEntries: n})
	for i := range n {
		require.NoError(t, cache.Set(t.Context(), c, fmt.Sprint("k", i), i, 0))
	}
	held := 0
	for i := range n {
		if _, err := cache.Get[int](t.Context(), c, fmt.Sprint("k", i)); err == nil {
			held++
		}
	}
	assert.GreaterOrEqual(t, held, n*95/100, "a cache of %d entries holds %d", n, held)
}

func TestPerCallTTLOnL1Only(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{TTLJitter: -1})
	require.NoError(t, cache.Set(t.Context(), c, "short", 1, 30*time.Millisecond))
	require.NoError(t, cache.Set(t.Context(), c, "long", 1, 0))
	require.Eventually(t, func() bool {
		_, err := cache.Get[int](t.Context(), c, "short")
		return errors.Is(err, cache.ErrMiss)
	}, settle, time.Millisecond, "a 30 ms entry expires")
	_, err := cache.Get[int](t.Context(), c, "long")
	assert.NoError(t, err)
}

func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{NegativeTTL: time.Minute})
	var calls atomic.Int32
	load := func(context.Context) (int, error) {
		calls.Add(1)
		return 0, fmt.Errorf("order 9: %w", cache.ErrNotFound)
	}
	for range 3 {
		_, err := cache.GetOrSet(t.Context(), c, "order:9", 0, load)
		assert.ErrorIs(t, err, cache.ErrNotFound)
	}
	assert.Equal(t, int32(1), calls.Load(), "not-found is cached")
	assert.Equal(t, uint64(2), c.Stats().NegativeHits)

	other := errors.New("timeout")
	for range 2 {
		_, err := cache.GetOrSet(t.Context(), c, "order:10", 0, func(context.Context) (int, error) {
			calls.Add(1)
			return 0, other
		})
		assert.ErrorIs(t, err, other)
	}
	assert.Equal(t, int32(3), calls.Load(), "other errors are not cached")
}

// clock is a settable clock for stale-while-revalidate tests.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }

func TestStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c := newL1(t, cache.Config{StaleFor: time.Hour, TTLJitter: -1, Now: clk.Now})
	var version atomic.Int32
	release := make(chan struct{}, 1)
	load := func(context.Context) (int32, error) {
		if version.Load() > 0 {
			// Never block for good: a second refresh would hang Close.
			select {
			case <-release:
			case <-time.After(settle):
			}
		}
		return version.Add(1), nil
	}
	v, err := cache.GetOrSet(t.Context(), c, "k", 10*time.Second, load)
	require.NoError(t, err)
	require.Equal(t, int32(1), v)

	clk.Add(11 * time.Second) // past the 10 s TTL, inside the stale window
	v, err = cache.GetOrSet(t.Context(), c, "k", 10*time.Second, load)
	require.NoError(t, err)
	assert.Equal(t, int32(1), v, "stale value served at once")
	v, _ = cache.GetOrSet(t.Context(), c, "k", 10*time.Second, load)
	assert.Equal(t, int32(1), v, "still stale while the refresh runs")
	release <- struct{}{}
	require.Eventually(t, func() bool {
		v, _ := cache.GetOrSet(t.Context(), c, "k", 10*time.Second, load)
		return v == 2
	}, settle, time.Millisecond, "refreshed value arrives")
	assert.Equal(t, int32(2), version.Load(), "one refresh for several stale reads")
	assert.GreaterOrEqual(t, c.Stats().StaleServed, uint64(2))
}

func TestJitterShortensTTL(t *testing.T) {
	t.Parallel()
	// With TTLJitter 1 each TTL is cut by a random fraction in [0, 1): the
	// expiries of many 5 s entries spread over (0, 5 s], so some are gone
	// while others are still there. The spread is wide so a loaded machine
	// that stalls the test for a while still sees the middle of it.
	c := newL1(t, cache.Config{TTLJitter: 1})
	for i := range 200 {
		require.NoError(t, cache.Set(t.Context(), c, fmt.Sprint(i), i, 5*time.Second))
	}
	gone := 0
	require.Eventually(t, func() bool {
		gone = 0
		for i := range 200 {
			if _, err := cache.Get[int](t.Context(), c, fmt.Sprint(i)); err != nil {
				gone++
			}
		}
		return gone > 0
	}, settle, 5*time.Millisecond, "jittered entries expire before the 5 s TTL")
	assert.Less(t, gone, 200, "the first expiries came long before the last: the TTLs are spread")
}

func TestClosedCache(t *testing.T) {
	t.Parallel()
	c, err := cache.New(cache.Config{})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	assert.ErrorIs(t, cache.Set(t.Context(), c, "k", 1, 0), cache.ErrClosed)
	assert.ErrorIs(t, c.Delete(t.Context(), "k"), cache.ErrClosed)
	assert.ErrorIs(t, cache.SetMany(t.Context(), c, map[string]int{"k": 1}, 0), cache.ErrClosed)
	_, err = cache.GetMany[int](t.Context(), c, []string{"k"})
	assert.ErrorIs(t, err, cache.ErrClosed)
	_, err = cache.Get[int](t.Context(), c, "k")
	assert.ErrorIs(t, err, cache.ErrClosed)
	v, err := cache.GetOrSet(t.Context(), c, "k", 0, func(context.Context) (int, error) { return 3, nil })
	require.NoError(t, err, "reads still run the loader")
	assert.Equal(t, 3, v)
}

func TestLocalPatternAndTags(t *testing.T) {
	t.Parallel()
	c := newL1(t, cache.Config{})
	ctx := t.Context()
	require.NoError(t, cache.Set(ctx, c, "menu:1", "a", 0, cache.WithTags("r1")))
	require.NoError(t, cache.Set(ctx, c, "menu:2", "b", 0))
	require.NoError(t, cache.Set(ctx, c, "order:1", "c", 0, cache.WithTags("r1")))
	require.NoError(t, cache.Set(ctx, c, "order:2", "d", 0))

	_, err := c.InvalidatePattern(ctx, "menu:*")
	require.NoError(t, err)
	_, err = c.InvalidateTags(ctx, "r1")
	require.NoError(t, err)
	for key, want := range map[string]bool{"menu:1": false, "menu:2": false, "order:1": false, "order:2": true} {
		_, err := cache.Get[string](ctx, c, key)
		assert.Equal(t, want, err == nil, key)
	}
}
