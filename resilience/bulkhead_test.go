package resilience

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBulkheadExactConcurrency(t *testing.T) {
	t.Parallel()
	const limit, callers = 7, 1000
	bh, err := NewBulkhead(BulkheadConfig{MaxConcurrent: limit, MaxQueue: callers})
	require.NoError(t, err)
	var cur, peak, done atomic.Int32
	// The first calls to get in hold their slots until all limit slots are
	// taken at once, so the peak reaches the limit however the goroutines are
	// scheduled; the rest churn through the slots to show it is never passed.
	full := make(chan struct{})
	var fullOnce sync.Once
	fn := Isolate(bh, func(context.Context) (int, error) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == limit {
			fullOnce.Do(func() { close(full) })
		}
		<-full
		runtime.Gosched()
		cur.Add(-1)
		return 1, nil
	})
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := fn(context.Background()); err == nil {
				done.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(limit), peak.Load(), "peak concurrency")
	assert.Equal(t, int32(callers), done.Load(), "every queued call ran")
	assert.Equal(t, 0, bh.InFlight())
	assert.Equal(t, 0, bh.Queued())
}

// hold occupies one slot of bh until the returned func is called.
func hold(t *testing.T, bh *Bulkhead) func() {
	t.Helper()
	in, release, out := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(out)
		_ = bh.Do(context.Background(), func(context.Context) error {
			close(in)
			<-release
			return nil
		})
	}()
	<-in
	return func() { close(release); <-out }
}

func TestBulkheadRejects(t *testing.T) {
	t.Parallel()
	bh, err := NewBulkhead(BulkheadConfig{Name: "db", MaxConcurrent: 1})
	require.NoError(t, err)
	release := hold(t, bh)
	defer release()
	called := false
	err = bh.Do(context.Background(), func(context.Context) error { called = true; return nil })
	assert.False(t, called)
	assert.ErrorIs(t, err, ErrBulkheadFull)
	var be *BulkheadError
	require.ErrorAs(t, err, &be)
	assert.False(t, be.Queued)
	assert.Equal(t, "resilience: bulkhead full (db)", err.Error())
}

func TestBulkheadQueue(t *testing.T) {
	t.Parallel()
	clk := newManualClock()
	bh, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, QueueTimeout: time.Second, Clock: clk})
	require.NoError(t, err)
	release := hold(t, bh)

	// First queued call times out on the fake clock.
	res := make(chan error, 1)
	go func() { res <- bh.Do(context.Background(), func(context.Context) error { return nil }) }()
	require.Equal(t, time.Second, <-clk.Created)
	assert.ErrorIs(t, bh.Do(context.Background(), func(context.Context) error { return nil }), ErrBulkheadFull, "queue of 1 is full")
	clk.Advance(time.Second)
	err = <-res
	var be *BulkheadError
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Queued)

	// Second queued call gets the slot when it frees.
	go func() { res <- bh.Do(context.Background(), func(context.Context) error { return errBoom }) }()
	<-clk.Created
	release()
	assert.ErrorIs(t, <-res, errBoom, "the queued call ran")

	// A queued call whose context ends returns the context's error.
	release = hold(t, bh)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { res <- bh.Do(ctx, func(context.Context) error { return nil }) }()
	<-clk.Created
	cancel()
	assert.ErrorIs(t, <-res, context.Canceled)
}

func TestBulkheadValidates(t *testing.T) {
	t.Parallel()
	for _, c := range []BulkheadConfig{{MaxConcurrent: -1}, {MaxQueue: -1}, {QueueTimeout: -1}} {
		_, err := NewBulkhead(c)
		assert.Error(t, err, "%+v", c)
	}
}
