package resilience

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestQueueDeadlineIsNotABreakerFailure reproduces issue 17: callers of a
// healthy dependency behind a 1-slot bulkhead whose deadlines end while
// they wait in the queue opened the breaker (the raw context error counted
// as a dependency failure). Local overload must never open the circuit.
func TestQueueDeadlineIsNotABreakerFailure(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{
		Breaker:  &BreakerConfig{ConsecutiveFailures: 3},
		Bulkhead: &BulkheadConfig{MaxConcurrent: 1, MaxQueue: 10},
	})
	require.NoError(t, err)
	release := make(chan struct{})
	holding := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := Do(context.Background(), p, func(context.Context) (int, error) {
			close(holding)
			<-release // the healthy dependency, busy with the first caller
			return 1, nil
		})
		assert.NoError(t, err)
	})
	<-holding
	const queued = 5
	errs := make(chan error, queued)
	for range queued {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := Do(ctx, p, func(context.Context) (int, error) { return 1, nil })
			errs <- err
		})
	}
	for range queued {
		err := <-errs
		assert.ErrorIs(t, err, ErrBulkheadFull, "a deadline in the queue is a local rejection")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	close(release)
	wg.Wait()
	assert.Equal(t, StateClosed, p.Breaker().State(), "queue deadlines opened the breaker")
	c := p.Breaker().Counts()
	assert.Equal(t, uint32(0), c.TotalFailures)
	assert.Equal(t, uint32(1), c.TotalSuccesses)
}

// TestStandaloneBreakerExcludesQueueDeadline: the same when the caller
// nests the decorators itself (Breaker around Isolate).
func TestStandaloneBreakerExcludesQueueDeadline(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1})
	require.NoError(t, err)
	bh, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1})
	require.NoError(t, err)
	release, holding := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bh.Do(context.Background(), func(context.Context) error { close(holding); <-release; return nil })
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = cb.Do(ctx, func(ctx context.Context) error {
		return bh.Do(ctx, func(context.Context) error { return nil })
	})
	close(release)
	<-done
	require.ErrorIs(t, err, ErrBulkheadFull)
	assert.Equal(t, StateClosed, cb.State())
}

// TestSlowCallTimerStartsAtAdmission reproduces issue 17: the slow-call
// timer included the bulkhead queue wait, so a fast call that had queued
// counted as slow.
func TestSlowCallTimerStartsAtAdmission(t *testing.T) {
	t.Parallel()
	clk := newManualClock()
	p, err := NewPipeline(PipelineConfig{
		Clock:    clk,
		Breaker:  &BreakerConfig{ConsecutiveFailures: 2, SlowCallDuration: time.Second},
		Bulkhead: &BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1},
	})
	require.NoError(t, err)
	release, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // slow by the clock: a minute inside the dependency
		_, _ = Do(context.Background(), p, func(context.Context) (int, error) { close(holding); <-release; return 1, nil })
	})
	<-holding
	wg.Go(func() { // fast, but queued behind the first for that minute
		_, _ = Do(context.Background(), p, func(context.Context) (int, error) { return 1, nil })
	})
	for p.Bulkhead().Queued() != 1 {
		time.Sleep(time.Millisecond) // polling a state, not synchronising on time
	}
	clk.Advance(time.Minute)
	close(release)
	wg.Wait()
	c := p.Breaker().Counts()
	assert.Equal(t, uint32(1), c.TotalFailures, "only the call that was slow in the dependency is slow")
	assert.Equal(t, uint32(1), c.TotalSuccesses, "the queued call was fast once admitted")
	assert.Equal(t, StateClosed, p.Breaker().State())
}

// TestSlowCallTimerExcludesTokenWait: the same for a rate-limiter wait.
func TestSlowCallTimerExcludesTokenWait(t *testing.T) {
	t.Parallel()
	clk := newAutoClock() // a token wait advances the clock by the wait
	p, err := NewPipeline(PipelineConfig{
		Clock:     clk,
		Breaker:   &BreakerConfig{ConsecutiveFailures: 1, SlowCallDuration: time.Second},
		RateLimit: &RateLimitConfig{Limit: 1, Per: time.Minute, Burst: 1, MaxWait: time.Hour},
	})
	require.NoError(t, err)
	for range 3 {
		_, err := Do(context.Background(), p, okCall)
		require.NoError(t, err)
	}
	require.NotEmpty(t, clk.Sleeps(), "the calls waited for tokens")
	assert.Equal(t, StateClosed, p.Breaker().State(), "token waits counted as slow calls")
	assert.Equal(t, uint32(3), p.Breaker().Counts().TotalSuccesses)
}

// TestTokenWaitCanceledIsNotABreakerFailure: a deadline that ends while
// waiting for a rate-limit token is a local rejection.
func TestTokenWaitDeadlineIsNotABreakerFailure(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1})
	require.NoError(t, err)
	rl, err := NewRateLimiter(RateLimitConfig{Limit: 1, Per: time.Hour, Burst: 1, MaxWait: 2 * time.Hour})
	require.NoError(t, err)
	require.NoError(t, rl.Do(context.Background(), func(context.Context) error { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = cb.Do(ctx, func(ctx context.Context) error { return rl.Do(ctx, func(context.Context) error { return nil }) })
	require.ErrorIs(t, err, ErrRateLimited)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, StateClosed, cb.State())
}

// TestBreakersKeepOpenBreakers reproduces issue 17: the registry evicted
// open breakers, so a dead key got traffic again through a fresh closed
// breaker.
func TestBreakersKeepOpenBreakers(t *testing.T) {
	t.Parallel()
	reg, err := NewBreakers(BreakerConfig{Name: "hosts", ConsecutiveFailures: 1}, 2)
	require.NoError(t, err)
	dead := errors.New("dead")
	for _, k := range []string{"a", "b"} {
		_ = reg.Get(k).Do(context.Background(), func(context.Context) error { return dead })
		require.Equal(t, StateOpen, reg.Get(k).State())
	}
	for _, k := range []string{"c", "d", "e"} {
		_ = reg.Get(k).Do(context.Background(), func(context.Context) error { return nil })
	}
	for _, k := range []string{"a", "b"} {
		called := false
		err := reg.Get(k).Do(context.Background(), func(context.Context) error { called = true; return nil })
		assert.ErrorIs(t, err, ErrOpen, "key %s", k)
		assert.False(t, called, "dead key %s got traffic again", k)
	}
	assert.Equal(t, 2, reg.Len())
	assert.Equal(t, "hosts/_overflow", reg.Get("z").Name(), "new keys share the overflow breaker while full of open ones")
}

// TestBreakersEvictedGaugeStops reproduces issue 17: an evicted breaker's
// resilience.breaker.state series kept reporting its last value forever.
func TestBreakersEvictedGaugeStops(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	reg, err := NewBreakers(BreakerConfig{Name: "hosts", ConsecutiveFailures: 1, MeterProvider: mp}, 2)
	require.NoError(t, err)
	_ = reg.Get("open").Do(context.Background(), func(context.Context) error { return errBoom })
	_ = reg.Get("closed").Do(context.Background(), func(context.Context) error { return nil })
	assert.Equal(t, map[string]int64{"hosts/open": 2, "hosts/closed": 0}, stateSeries(t, reader))
	reg.Get("new") // evicts "closed", the only closed breaker
	assert.Equal(t, map[string]int64{"hosts/open": 2, "hosts/new": 0}, stateSeries(t, reader))
}

// stateSeries returns resilience.breaker.state by policy name.
func stateSeries(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	eachMetric(t, r, func(m metricdata.Metrics) {
		if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "perfkit.resilience.breaker.state" {
			for _, p := range g.DataPoints {
				v, _ := p.Attributes.Value(attrPolicy)
				out[v.AsString()] = p.Value
			}
		}
	})
	return out
}
