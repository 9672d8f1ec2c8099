package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type transition struct{ from, to State }

// recorder collects OnStateChange calls.
type recorder struct {
	mu sync.Mutex
	ts []transition
}

func (r *recorder) hook(_ string, from, to State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ts = append(r.ts, transition{from, to})
}

func (r *recorder) get() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.ts...)
}

func fail(context.Context) (int, error) { return 0, errBoom }

// openFor is the OpenTimeout of tests that assert a breaker is still open
// after tripping it. gobreaker times the open state with the system clock
// (it takes no injected clock), so this is a real-time bound: long enough
// that a test goroutine descheduled on a loaded 2-core machine under -race
// still finds the breaker open, short enough to keep each test well under a
// second.
const openFor = 200 * time.Millisecond

// waitHalfOpen waits out the (real, gobreaker-timed) open period.
func waitHalfOpen(t *testing.T, cb *CircuitBreaker) {
	t.Helper()
	require.Eventually(t, func() bool { return cb.State() == StateHalfOpen }, 2*time.Second, time.Millisecond)
}

func TestBreakerLifecycle(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	cb, err := NewCircuitBreaker(BreakerConfig{
		Name: "dep", ConsecutiveFailures: 3, OpenTimeout: openFor, HalfOpenProbes: 2, OnStateChange: rec.hook,
	})
	require.NoError(t, err)
	failing := Breaker(cb, fail)
	ok := Breaker(cb, okCall)
	ctx := context.Background()

	for i := range 2 {
		_, err := failing(ctx)
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, StateClosed, cb.State(), "after %d failures", i+1)
	}
	_, err = failing(ctx)
	require.ErrorIs(t, err, errBoom)
	require.Equal(t, StateOpen, cb.State(), "after 3 consecutive failures")

	called := false
	_, err = Breaker(cb, func(context.Context) (int, error) { called = true; return 1, nil })(ctx)
	assert.False(t, called, "an open breaker must not call through")
	assert.ErrorIs(t, err, ErrOpen)
	assert.ErrorIs(t, err, gobreaker.ErrOpenState)
	var be *BreakerError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "dep", be.Name)
	assert.Equal(t, "resilience: circuit open (dep)", err.Error())

	waitHalfOpen(t, cb)
	_, err = ok(ctx)
	require.NoError(t, err)
	assert.Equal(t, StateHalfOpen, cb.State(), "one of two probes succeeded")
	_, err = ok(ctx)
	require.NoError(t, err)
	assert.Equal(t, StateClosed, cb.State(), "both probes succeeded")
	assert.Equal(t, []transition{{StateClosed, StateOpen}, {StateOpen, StateHalfOpen}, {StateHalfOpen, StateClosed}}, rec.get())
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1, OpenTimeout: openFor})
	require.NoError(t, err)
	_, _ = Breaker(cb, fail)(context.Background())
	waitHalfOpen(t, cb)
	_, err = Breaker(cb, fail)(context.Background())
	assert.ErrorIs(t, err, errBoom)
	assert.Equal(t, StateOpen, cb.State())
}

func TestBreakerHalfOpenProbeLimit(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1, OpenTimeout: 10 * time.Millisecond, HalfOpenProbes: 1})
	require.NoError(t, err)
	_, _ = Breaker(cb, fail)(context.Background())
	waitHalfOpen(t, cb)

	inProbe, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := Breaker(cb, func(context.Context) (int, error) {
			close(inProbe)
			<-release
			return 1, nil
		})(context.Background())
		done <- err
	}()
	<-inProbe
	_, err = Breaker(cb, okCall)(context.Background())
	assert.ErrorIs(t, err, ErrTooManyRequests)
	assert.ErrorIs(t, err, gobreaker.ErrTooManyRequests)
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, StateClosed, cb.State())
}

func TestBreakerFailureRatio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pattern  string // f = failure, s = success
		wantOpen bool
	}{
		{"below min requests", "fffffffff", false},
		{"ratio reached at min requests", "sssssfffff", true},
		{"ratio below threshold", "ssssssffff", false},
		{"ratio reached later", "ssssssffffsfff", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cb, err := NewCircuitBreaker(BreakerConfig{FailureRatio: 0.5, MinRequests: 10})
			require.NoError(t, err)
			for _, c := range tt.pattern {
				fn := okCall
				if c == 'f' {
					fn = fail
				}
				_, _ = Breaker(cb, fn)(context.Background())
			}
			assert.Equal(t, tt.wantOpen, cb.State() == StateOpen, "state %v after %s", cb.State(), tt.pattern)
		})
	}
}

func TestBreakerNotCounted(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
	}{
		{"context canceled", context.Background(), context.Canceled},
		{"wrapped cancel", context.Background(), fmt.Errorf("read: %w", context.Canceled)},
		{"caller canceled, other error", canceled, errBoom},
		{"not failure", context.Background(), NotFailure(fmt.Errorf("404: %w", errBoom))},
		{"bulkhead rejection", context.Background(), &BulkheadError{}},
		{"rate limited", context.Background(), &RateLimitError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1})
			require.NoError(t, err)
			for range 3 {
				_, err = Breaker(cb, func(context.Context) (int, error) { return 0, tt.err })(tt.ctx)
				assert.ErrorIs(t, err, tt.err)
			}
			assert.Equal(t, StateClosed, cb.State())
			c := cb.Counts()
			assert.Equal(t, uint32(0), c.TotalFailures)
			assert.Equal(t, uint32(3), c.TotalExclusions)
		})
	}
}

func TestBreakerIsFailure(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1, IsFailure: func(err error) bool { return err != errBoom }})
	require.NoError(t, err)
	_, _ = Breaker(cb, fail)(context.Background())
	assert.Equal(t, StateClosed, cb.State())
}

func TestBreakerSlowCalls(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 2, SlowCallDuration: 100 * time.Millisecond, Clock: clk})
	require.NoError(t, err)
	slow := Breaker(cb, func(context.Context) (int, error) { clk.Advance(200 * time.Millisecond); return 7, nil })
	fast := Breaker(cb, func(context.Context) (int, error) { clk.Advance(50 * time.Millisecond); return 7, nil })
	v, err := fast(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	v, err = slow(context.Background())
	require.NoError(t, err, "a slow call still returns its result")
	assert.Equal(t, 7, v)
	assert.Equal(t, StateClosed, cb.State())
	_, _ = slow(context.Background())
	assert.Equal(t, StateOpen, cb.State(), "two slow calls in a row")
}

func TestBreakerDo(t *testing.T) {
	t.Parallel()
	cb, err := NewCircuitBreaker(BreakerConfig{ConsecutiveFailures: 1})
	require.NoError(t, err)
	assert.ErrorIs(t, cb.Do(context.Background(), func(context.Context) error { return errBoom }), errBoom)
	assert.ErrorIs(t, cb.Do(context.Background(), func(context.Context) error { return nil }), ErrOpen)
	assert.Equal(t, "breaker", cb.Name())
}

func TestBreakerValidates(t *testing.T) {
	t.Parallel()
	for _, c := range []BreakerConfig{
		{FailureRatio: 1.5}, {FailureRatio: -0.1}, {Window: -1}, {OpenTimeout: -1},
		{Window: time.Second, BucketPeriod: time.Minute},
	} {
		_, err := NewCircuitBreaker(c)
		assert.Error(t, err, "%+v", c)
	}
	_, err := NewBreakers(BreakerConfig{FailureRatio: 2}, 0)
	assert.Error(t, err)
	_, err = NewBreakers(BreakerConfig{}, -1)
	assert.Error(t, err)
}

func TestBreakers(t *testing.T) {
	t.Parallel()
	reg, err := NewBreakers(BreakerConfig{Name: "http", ConsecutiveFailures: 1}, 2)
	require.NoError(t, err)
	a := reg.Get("a.example")
	assert.Same(t, a, reg.Get("a.example"))
	assert.Equal(t, "http/a.example", a.Name())
	b := reg.Get("b.example")
	assert.NotSame(t, a, b)

	_, _ = Breaker(a, fail)(context.Background())
	require.Equal(t, StateOpen, a.State())
	assert.Equal(t, StateClosed, b.State(), "breakers per key are independent")

	reg.Get("c.example")
	assert.Equal(t, 2, reg.Len())
	assert.Same(t, a, reg.Get("a.example"), "the open breaker is kept, a closed one evicted")
	assert.NotSame(t, b, reg.Get("b.example"))
}

func TestBreakersConcurrentGet(t *testing.T) {
	t.Parallel()
	reg, err := NewBreakers(BreakerConfig{}, 0)
	require.NoError(t, err)
	var wg sync.WaitGroup
	got := make([]*CircuitBreaker, 50)
	for i := range got {
		wg.Go(func() { got[i] = reg.Get("same") })
	}
	wg.Wait()
	for _, b := range got {
		assert.Same(t, got[0], b)
	}
	assert.Equal(t, "same", got[0].Name())
}

func TestBreakersEvictWhenAllOpen(t *testing.T) {
	t.Parallel()
	reg, err := NewBreakers(BreakerConfig{ConsecutiveFailures: 1}, 2)
	require.NoError(t, err)
	for _, k := range []string{"a", "b"} {
		_, _ = Breaker(reg.Get(k), fail)(context.Background())
		require.Equal(t, StateOpen, reg.Get(k).State())
	}
	c := reg.Get("c")
	assert.Equal(t, 2, reg.Len(), "the registry stays bounded")
	assert.Equal(t, StateClosed, c.State())
	assert.Same(t, c, reg.Get("c"))
}

func TestBreakerLogs(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	cb, err := NewCircuitBreaker(BreakerConfig{Name: "pg", ConsecutiveFailures: 1, Logger: logger})
	require.NoError(t, err)
	_, _ = Breaker(cb, fail)(context.Background())
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, buf.String(), "level=WARN", "opening is logged at Warn, as httpclient did")
	assert.Contains(t, buf.String(), "breaker=pg from=closed to=open")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// twoStep is the shape of httpclient.CircuitBreaker, which TwoStepBreaker
// satisfies.
type twoStep interface {
	Allow() (done func(err error), err error)
}

var _ twoStep = (*TwoStepBreaker)(nil)

func TestTwoStepBreaker(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	clk := newAutoClock()
	b, err := NewTwoStepBreaker(BreakerConfig{
		Name: "host", ConsecutiveFailures: 2, OpenTimeout: openFor,
		SlowCallDuration: time.Second, Clock: clk, OnStateChange: rec.hook,
	})
	require.NoError(t, err)
	assert.Equal(t, "host", b.Name())

	for _, outcome := range []error{context.Canceled, NotFailure(errBoom), nil, errBoom} {
		done, err := b.Allow()
		require.NoError(t, err)
		done(outcome)
	}
	assert.Equal(t, StateClosed, b.State(), "one real failure")
	c := b.Counts()
	assert.Equal(t, uint32(2), c.TotalExclusions, "canceled and NotFailure are not counted")
	assert.Equal(t, uint32(1), c.TotalFailures)

	done, err := b.Allow()
	require.NoError(t, err)
	clk.Advance(2 * time.Second)
	done(nil) // slow success counts as the second consecutive failure
	assert.Equal(t, StateOpen, b.State())

	_, err = b.Allow()
	assert.ErrorIs(t, err, ErrOpen)
	assert.ErrorIs(t, err, gobreaker.ErrOpenState)

	require.Eventually(t, func() bool { return b.State() == StateHalfOpen }, 2*time.Second, time.Millisecond)
	done, err = b.Allow()
	require.NoError(t, err)
	_, err = b.Allow()
	assert.ErrorIs(t, err, ErrTooManyRequests, "one probe at a time")
	done(nil)
	assert.Equal(t, StateClosed, b.State())
	assert.Equal(t, []transition{{StateClosed, StateOpen}, {StateOpen, StateHalfOpen}, {StateHalfOpen, StateClosed}}, rec.get())

	_, err = NewTwoStepBreaker(BreakerConfig{FailureRatio: 3})
	assert.Error(t, err)
}

// refusedErr is an error a limiter outside resilience returns: the call
// never reached the dependency.
type refusedErr struct{}

func (refusedErr) Error() string             { return "refused by a limiter" }
func (refusedErr) Refused() bool             { return true }
func (refusedErr) RetryAfter() time.Duration { return time.Second }

// TestDefaultIsFailureSkipsRefused: an error with Refused() true, also
// wrapped, is not a breaker failure, yet the default Retryable retries it.
func TestDefaultIsFailureSkipsRefused(t *testing.T) {
	wrapped := fmt.Errorf("calling: %w", refusedErr{})
	for _, err := range []error{refusedErr{}, wrapped} {
		if DefaultIsFailure(err) {
			t.Errorf("DefaultIsFailure(%v) = true, want false", err)
		}
		if !DefaultRetryable(err) {
			t.Errorf("DefaultRetryable(%v) = false, want true", err)
		}
	}
	if !DefaultIsFailure(errors.New("dependency down")) {
		t.Error("a plain error must count as a failure")
	}
}
