package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBoom = errors.New("boom")

// failing returns a func that fails n times with err, then returns 42, and
// a pointer to its call count.
func failing(n int, err error) (func(context.Context) (int, error), *atomic.Int32) {
	var calls atomic.Int32
	return func(context.Context) (int, error) {
		if int(calls.Add(1)) <= n {
			return 0, err
		}
		return 42, nil
	}, &calls
}

func TestRetryAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		failures    int
		maxAttempts int
		wantCalls   int32
		wantErr     bool
	}{
		{"first attempt succeeds", 0, 3, 1, false},
		{"succeeds on last attempt", 2, 3, 3, false},
		{"exhausted", 5, 3, 3, true},
		{"default is 3 attempts", 5, 0, 3, true},
		{"one attempt disables retry", 5, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn, calls := failing(tt.failures, errBoom)
			v, err := Retry(RetryConfig{MaxAttempts: tt.maxAttempts, Clock: newAutoClock()}, fn)(context.Background())
			assert.Equal(t, tt.wantCalls, calls.Load(), "calls")
			assert.Equal(t, tt.wantErr, err != nil, "error %v", err)
			assert.Equal(t, !tt.wantErr, v == 42, "value %d", v)
		})
	}
}

func TestRetryExhaustedError(t *testing.T) {
	t.Parallel()
	fn, _ := failing(10, errBoom)
	_, err := Retry(RetryConfig{MaxAttempts: 3, Clock: newAutoClock()}, fn)(context.Background())
	var re *RetryError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, re.Attempts)
	assert.ErrorIs(t, err, errBoom)
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.Equal(t, "resilience: gave up after 3 attempts (retries exhausted): boom", err.Error())
}

func TestRetryBackoffBounds(t *testing.T) {
	t.Parallel()
	const base, maxD = 100 * time.Millisecond, time.Second
	exp := func(n int) time.Duration { return min(maxD, base<<(n-1)) }
	tests := []struct {
		name   string
		jitter Jitter
		lo, hi func(n int, prev time.Duration) time.Duration
	}{
		{"full", JitterFull, func(int, time.Duration) time.Duration { return 0 }, func(n int, _ time.Duration) time.Duration { return exp(n) }},
		{"equal", JitterEqual, func(n int, _ time.Duration) time.Duration { return exp(n) / 2 }, func(n int, _ time.Duration) time.Duration { return exp(n) }},
		{"none", JitterNone, func(n int, _ time.Duration) time.Duration { return exp(n) }, func(n int, _ time.Duration) time.Duration { return exp(n) }},
		{"decorrelated", JitterDecorrelated, func(int, time.Duration) time.Duration { return base }, func(_ int, prev time.Duration) time.Duration { return min(maxD, 3*prev) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				clk := newAutoClock()
				fn, _ := failing(100, errBoom)
				_, err := Retry(RetryConfig{MaxAttempts: 8, BaseDelay: base, MaxDelay: maxD, Jitter: tt.jitter, Clock: clk}, fn)(context.Background())
				require.ErrorIs(t, err, ErrRetriesExhausted)
				sleeps := clk.Sleeps()
				require.Len(t, sleeps, 7)
				prev := base
				for i, d := range sleeps {
					n := i + 1
					assert.GreaterOrEqual(t, d, tt.lo(n, prev), "retry %d", n)
					assert.LessOrEqual(t, d, tt.hi(n, prev), "retry %d", n)
					prev = d
				}
			}
		})
	}
}

func TestRetryMaxElapsed(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	fn, calls := failing(100, errBoom)
	_, err := Retry(RetryConfig{
		MaxAttempts: 10, BaseDelay: time.Second, Jitter: JitterNone, MaxElapsed: 2500 * time.Millisecond, Clock: clk,
	}, fn)(context.Background())
	// Delays 1 s then 2 s: the second would start the third attempt at 3 s.
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.Equal(t, int32(2), calls.Load())
	assert.Equal(t, []time.Duration{time.Second}, clk.Sleeps())
}

func TestRetryStopsAtOnce(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	tests := []struct {
		name      string
		err       error
		retryable func(error) bool
		wantCalls int32
		wantIs    error
	}{
		{"permanent", Permanent(errBoom), nil, 1, errBoom},
		{"backoff permanent", backoff.Permanent(errBoom), nil, 1, errBoom},
		{"not failure", NotFailure(errBoom), nil, 1, errBoom},
		{"breaker open", &BreakerError{err: ErrOpen}, nil, 1, ErrOpen},
		{"not in list", syscall.ECONNRESET, RetryOn(syscall.ECONNREFUSED, syscall.ETIMEDOUT), 1, syscall.ECONNRESET},
		{"in list", refused, RetryOn(syscall.ECONNREFUSED, syscall.ETIMEDOUT), 3, syscall.ECONNREFUSED},
		{"transient", refused, IsTransient, 3, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn, calls := failing(100, tt.err)
			_, err := Retry(RetryConfig{Retryable: tt.retryable, Clock: newAutoClock()}, fn)(context.Background())
			assert.Equal(t, tt.wantCalls, calls.Load())
			assert.ErrorIs(t, err, tt.wantIs)
		})
	}
}

func TestPermanentUnwrapped(t *testing.T) {
	t.Parallel()
	fn, _ := failing(1, Permanent(errBoom))
	_, err := Retry(RetryConfig{}, fn)(context.Background())
	assert.Same(t, errBoom, err, "Retry returns the cause of a permanent error")
	assert.NoError(t, Permanent(nil))
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errBoom, false},
		{syscall.ECONNREFUSED, true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{fmt.Errorf("x: %w", syscall.ETIMEDOUT), true},
		{syscall.ECONNRESET, true},
		{timeoutErr{}, true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{syscall.ENOENT, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, IsTransient(tt.err), "IsTransient(%v)", tt.err)
	}
}

type retryAfterErr time.Duration

func (e retryAfterErr) Error() string             { return "slow down" }
func (e retryAfterErr) RetryAfter() time.Duration { return time.Duration(e) }

func TestRetryServerDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{
		{"honoured", 2 * time.Second, 2 * time.Second},
		{"longer than the backoff's MaxDelay but within MaxRetryAfter", 30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newAutoClock()
			fn, _ := failing(1, fmt.Errorf("call: %w", retryAfterErr(tt.after)))
			v, err := Retry(RetryConfig{Clock: clk, MaxRetryAfter: time.Minute}, fn)(context.Background())
			require.NoError(t, err)
			assert.Equal(t, 42, v)
			assert.Equal(t, []time.Duration{tt.want}, clk.Sleeps())
		})
	}
}

// TestRetryNeverBeforeServerDelay: a Retry-After longer than what the
// policy may wait used to be cut to MaxDelay, so the next attempt went out
// before the server allowed it. Retry now gives up at once, without a
// second call, with an error that carries the server's delay.
func TestRetryNeverBeforeServerDelay(t *testing.T) {
	t.Parallel()
	t.Run("longer than MaxRetryAfter", func(t *testing.T) {
		t.Parallel()
		clk := newAutoClock()
		fn, calls := failing(1, fmt.Errorf("call: %w", retryAfterErr(time.Hour)))
		_, err := Retry(RetryConfig{Clock: clk, MaxDelay: 10 * time.Second}, fn)(context.Background())
		var re *RetryError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, ErrRetryAfterTooLong)
		assert.Equal(t, time.Hour, re.ServerDelay)
		var ra RetryAfterer
		require.ErrorAs(t, err, &ra, "the server's delay must reach the caller")
		assert.Equal(t, time.Hour, ra.RetryAfter())
		assert.Equal(t, int32(1), calls.Load(), "no attempt before the server allows")
		assert.Empty(t, clk.Sleeps())
	})
	t.Run("past the deadline", func(t *testing.T) {
		t.Parallel()
		clk := newAutoClock()
		ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Minute))
		defer cancel()
		fn, calls := failing(1, retryAfterErr(2*time.Minute))
		_, err := Retry(RetryConfig{Clock: clk, MaxRetryAfter: time.Hour}, fn)(ctx)
		var re *RetryError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 2*time.Minute, re.ServerDelay)
		assert.Equal(t, int32(1), calls.Load())
	})
}

func TestRetryNeverSleepsPastDeadline(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	// Deadlines are compared with the injected clock, so minutes of fake
	// backoff take no real time and the real deadline never passes.
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(50*time.Minute))
	defer cancel()
	fn, calls := failing(100, errBoom)
	_, err := Retry(RetryConfig{
		MaxAttempts: 10, BaseDelay: 20 * time.Minute, MaxDelay: time.Hour, Jitter: JitterNone, Clock: clk,
	}, fn)(ctx)
	// 20 min fits before the deadline, 20+40 does not.
	assert.Equal(t, int32(2), calls.Load())
	assert.Equal(t, []time.Duration{20 * time.Minute}, clk.Sleeps())
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, errBoom)
}

// TestRetryCancelMidBackoff is not parallel: the 10 ms bound is the issue's
// and measures real scheduling, so the test runs alone rather than competing
// for the two Ps with this package's parallel tests (Go preempts in 10 ms
// slices). The return time is taken on the retrying goroutine itself, so the
// wake-up of the test goroutine is not counted. The fake timer never fires:
// only the cancellation can end the wait.
func TestRetryCancelMidBackoff(t *testing.T) {
	clk := newManualClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fn, calls := failing(100, errBoom)
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := Retry(RetryConfig{BaseDelay: time.Hour, MaxDelay: time.Hour, Jitter: JitterNone, Clock: clk}, fn)(ctx)
		done <- result{err, time.Now()}
	}()
	require.Equal(t, time.Hour, <-clk.Created, "Retry should be waiting out its first backoff")
	start := time.Now()
	cancel()
	res := <-done
	err := res.err
	elapsed := res.at.Sub(start)
	assert.Less(t, elapsed, time.Second, "return after cancellation, not after the hour-long backoff")
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, errBoom)
	assert.Equal(t, int32(1), calls.Load())
}

func TestRetryCanceledBeforeCall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fn := func(ctx context.Context) (int, error) { return 0, ctx.Err() }
	_, err := Retry(RetryConfig{Clock: newManualClock()}, fn)(ctx)
	var re *RetryError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 1, re.Attempts)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	budget, err := NewBudget(0.1, 1)
	require.NoError(t, err)
	p := RetryConfig{MaxAttempts: 5, Budget: budget, Clock: newAutoClock()}

	fail, calls := failing(1000, errBoom)
	_, err = Retry(p, fail)(context.Background())
	assert.ErrorIs(t, err, ErrRetryBudget)
	assert.Equal(t, int32(2), calls.Load(), "one retry from the initial reserve")

	ok := Retry(p, okCall)
	for range 10 {
		_, err := ok(context.Background())
		require.NoError(t, err)
	}
	assert.InDelta(t, 1.0, budget.Tokens(), 0.001, "ten calls at ratio 0.1 refill one token")
	calls.Store(0)
	_, err = Retry(p, fail)(context.Background())
	assert.ErrorIs(t, err, ErrRetryBudget)
	assert.Equal(t, int32(2), calls.Load())
}

func TestNewBudgetValidates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ratio float64
		max   int
	}{{0, 1}, {-1, 1}, {1, -1}, {2000, 1}, {math.NaN(), 1}, {0.2, math.MaxInt}} {
		_, err := NewBudget(tt.ratio, tt.max)
		assert.Error(t, err, "NewBudget(%v, %v)", tt.ratio, tt.max)
	}
}

func TestRetryAttemptTimeout(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	fn := func(ctx context.Context) (int, error) {
		calls.Add(1)
		<-ctx.Done()
		return 0, ctx.Err()
	}
	_, err := Retry(RetryConfig{MaxAttempts: 2, AttemptTimeout: 5 * time.Millisecond, Clock: newAutoClock()}, fn)(context.Background())
	assert.Equal(t, int32(2), calls.Load())
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRetryOnRetryHook(t *testing.T) {
	t.Parallel()
	type call struct {
		attempt int
		err     error
		delay   time.Duration
	}
	var got []call
	fn, _ := failing(2, errBoom)
	_, err := Retry(RetryConfig{
		BaseDelay: time.Second, Jitter: JitterNone, Clock: newAutoClock(),
		OnRetry: func(_ context.Context, attempt int, err error, d time.Duration) {
			got = append(got, call{attempt, err, d})
		},
	}, fn)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []call{{1, errBoom, time.Second}, {2, errBoom, 2 * time.Second}}, got)
}

func TestRetryCustomBackoff(t *testing.T) {
	t.Parallel()
	clk := newAutoClock()
	fn, calls := failing(100, errBoom)
	_, err := Retry(RetryConfig{
		MaxAttempts: 3, Clock: clk,
		Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) },
	}, fn)(context.Background())
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.Equal(t, []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}, clk.Sleeps())
	assert.Equal(t, int32(3), calls.Load())

	fn, calls = failing(100, errBoom)
	_, err = Retry(RetryConfig{Backoff: func() backoff.BackOff { return &backoff.StopBackOff{} }}, fn)(context.Background())
	assert.ErrorIs(t, err, ErrRetriesExhausted)
	assert.Equal(t, int32(1), calls.Load())
}

func TestRetry1(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	double := func(_ context.Context, n int) (int, error) {
		if calls.Add(1) == 1 {
			return 0, errBoom
		}
		return 2 * n, nil
	}
	v, err := Retry1(RetryConfig{Clock: newAutoClock()}, double)(context.Background(), 21)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
	assert.Equal(t, int32(2), calls.Load())
}

func TestNextDelayOverflow(t *testing.T) {
	t.Parallel()
	for _, j := range []Jitter{JitterFull, JitterEqual, JitterNone, JitterDecorrelated} {
		d := nextDelay(j, time.Hour, 24*time.Hour, 1000, 24*time.Hour)
		assert.LessOrEqual(t, d, 24*time.Hour, "jitter %d", j)
		assert.GreaterOrEqual(t, d, time.Duration(0), "jitter %d", j)
		// MaxDelay math.MaxInt64 ("no cap") once panicked in rand.Int64N.
		d = nextDelay(j, time.Second, math.MaxInt64, 100, math.MaxInt64)
		assert.GreaterOrEqual(t, d, time.Duration(0), "jitter %d, uncapped", j)
	}
}

func FuzzNextDelay(f *testing.F) {
	f.Add(int64(time.Millisecond), int64(time.Second), 3, int64(0), uint8(0))
	f.Add(int64(1), int64(1<<62), 63, int64(1<<62), uint8(1))
	f.Add(int64(time.Hour), int64(time.Second), 1, int64(time.Minute), uint8(3))
	f.Add(int64(time.Second), int64(math.MaxInt64), 100, int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, base, maxD int64, n int, prev int64, j uint8) {
		if base <= 0 || maxD < base {
			return
		}
		d := nextDelay(Jitter(j%4), time.Duration(base), time.Duration(maxD), n, time.Duration(prev))
		if d < 0 || d > time.Duration(maxD) {
			t.Fatalf("nextDelay = %v, want within [0, %v]", d, time.Duration(maxD))
		}
	})
}

func TestRetryConcurrentShared(t *testing.T) {
	t.Parallel()
	budget, err := NewBudget(0.5, 5)
	require.NoError(t, err)
	var calls atomic.Int32
	fn := Retry(RetryConfig{MaxAttempts: 3, Budget: budget, Clock: newAutoClock()}, func(context.Context) (int, error) {
		if calls.Add(1)%2 == 0 {
			return 0, errBoom
		}
		return 1, nil
	})
	var ok, failed atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			_, err := fn(context.Background())
			if err == nil {
				ok.Add(1)
				return
			}
			if errors.Is(err, errBoom) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(100), ok.Load()+failed.Load(), "every call succeeds or fails with the callee's error")
	assert.LessOrEqual(t, calls.Load()-100, int32(5+50), "retries stay within the budget's reserve plus ratio")
	assert.LessOrEqual(t, budget.Tokens(), 5.0)
}
