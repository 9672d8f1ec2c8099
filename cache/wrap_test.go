package cache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/testenv"
)

type order struct {
	ID     int    `json:"id"`
	Status string `json:"status"`
}

func TestCacheableAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	var dbReads atomic.Int32
	status := "pending"
	var mu sync.Mutex
	getOrder := func(_ context.Context, id int) (order, error) {
		dbReads.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return order{ID: id, Status: status}, nil
	}
	key := func(id int) string { return "order:" + strconv.Itoa(id) }
	a := newCache(t, rdb, prefix, cache.Config{})
	b := newCache(t, twin(t, rdb), prefix, cache.Config{})
	getA := cache.Cacheable(a, key, time.Minute, getOrder)
	getB := cache.Cacheable(b, key, time.Minute, getOrder)

	for _, get := range []func(context.Context, int) (order, error){getA, getB, getA, getB} {
		o, err := get(ctx, 5)
		require.NoError(t, err)
		assert.Equal(t, order{5, "pending"}, o)
	}
	assert.Equal(t, int32(1), dbReads.Load(), "one DB read for two instances")

	mu.Lock()
	status = "paid"
	mu.Unlock()
	require.NoError(t, a.Delete(ctx, key(5)))
	assert.Eventually(t, func() bool {
		o, err := getB(ctx, 5)
		return err == nil && o.Status == "paid"
	}, settle, time.Millisecond, "b reads the new status after a's invalidation")
}

func TestMemoize(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	boom := errors.New("boom")
	f := cache.Memoize(time.Hour, func(context.Context) (int, error) {
		n := calls.Add(1)
		if fail.Load() {
			return 0, boom
		}
		return int(n), nil
	})
	_, err := f(t.Context())
	require.ErrorIs(t, err, boom)
	fail.Store(false)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			v, err := f(t.Context())
			assert.NoError(t, err)
			assert.Equal(t, 2, v)
		})
	}
	wg.Wait()
	assert.Equal(t, int32(2), calls.Load(), "errors are not kept; the value is")

	expiring := cache.Memoize(10*time.Millisecond, func(context.Context) (int64, error) { return time.Now().UnixNano(), nil })
	first, _ := expiring(t.Context())
	assert.Eventually(t, func() bool { v, _ := expiring(t.Context()); return v != first }, settle, 5*time.Millisecond,
		"a 10 ms memo is recomputed after it expires")
}

func TestMemoizePanicReraised(t *testing.T) {
	t.Parallel()
	f := cache.Memoize(0, func(context.Context) (int, error) { panic("no") })
	defer func() {
		pe, ok := recover().(*cache.PanicError)
		require.True(t, ok, "want a *PanicError panic")
		assert.Equal(t, "no", pe.Value)
	}()
	_, _ = f(t.Context())
}
