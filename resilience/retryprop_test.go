package resilience

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// retryStats totals what TestRetryNeverEarly exercised.
var retryStats struct{ runs, attempts, serverDelays, gaveUpOnDelay atomic.Int64 }

// TestRetryNeverEarly checks, over random policies, deadlines and
// sequences of answers (success, plain failure, failure with a server
// delay, NotFailure) on a fake clock, that Retry never starts an attempt
// before the delay the previous answer asked for, never sleeps past the
// deadline or MaxRetryAfter, makes at most MaxAttempts attempts, and when
// it gives up on a server delay says how long the server asked for.
func TestRetryNeverEarly(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		clk := newAutoClock()
		start := clk.Now()
		maxDelay := time.Duration(rapid.IntRange(1, 60).Draw(t, "maxDelay")) * time.Second
		maxRetryAfter := time.Duration(rapid.IntRange(0, 120).Draw(t, "maxRetryAfter")) * time.Second
		attempts := rapid.IntRange(1, 6).Draw(t, "maxAttempts")
		hasDeadline := rapid.Bool().Draw(t, "hasDeadline")
		ctx := context.Background()
		var deadline time.Time
		if hasDeadline {
			deadline = start.Add(time.Duration(rapid.IntRange(1, 600).Draw(t, "deadline")) * time.Second)
			var cancel context.CancelFunc
			// The real deadline is far away; Retry compares it with the
			// fake clock, which is what is under test.
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		answers := rapid.SliceOfN(rapid.IntRange(0, 3), 1, 8).Draw(t, "answers")
		delays := rapid.SliceOfN(rapid.IntRange(0, 200), 8, 8).Draw(t, "delays")
		type call struct {
			at    time.Time
			after time.Duration // what this answer asked for
			err   error
		}
		var calls []call
		fn := func(context.Context) (int, error) {
			i := len(calls)
			c := call{at: clk.Now()}
			switch answers[min(i, len(answers)-1)] {
			case 0:
			case 1:
				c.err = errBoom
			case 2:
				c.after = time.Duration(delays[i%len(delays)]) * time.Second
				c.err = retryAfterErr(c.after)
				if c.after == 0 {
					c.err = errBoom
				}
			case 3:
				c.err = NotFailure(errBoom)
			}
			calls = append(calls, c)
			return 0, c.err
		}
		_, err := Retry(RetryConfig{MaxAttempts: attempts, MaxDelay: maxDelay, MaxRetryAfter: maxRetryAfter,
			Clock: clk, MeterProvider: noopProvider()}, fn)(ctx)
		limit := maxRetryAfter
		if limit == 0 {
			limit = maxDelay
		}
		if len(calls) > attempts {
			t.Fatalf("%d attempts, MaxAttempts %d", len(calls), attempts)
		}
		for i := 1; i < len(calls); i++ {
			prev := calls[i-1]
			if prev.after > 0 && calls[i].at.Sub(prev.at) < prev.after {
				t.Fatalf("attempt %d after %v, the server asked for %v", i+1, calls[i].at.Sub(prev.at), prev.after)
			}
			if prev.after > limit {
				t.Fatalf("waited a server delay of %v beyond MaxRetryAfter %v", prev.after, limit)
			}
			if hasDeadline && !calls[i].at.Before(deadline) {
				t.Fatalf("attempt %d at %v, at or past the deadline", i+1, calls[i].at.Sub(start))
			}
		}
		retryStats.runs.Add(1)
		retryStats.attempts.Add(int64(len(calls)))
		last := calls[len(calls)-1]
		if last.after > 0 {
			retryStats.serverDelays.Add(1)
		}
		var re *RetryError
		if errors.As(err, &re) && last.after > 0 && (errors.Is(err, ErrRetryAfterTooLong) || errors.Is(re.Reason, context.DeadlineExceeded)) {
			retryStats.gaveUpOnDelay.Add(1)
			if re.ServerDelay != last.after {
				t.Fatalf("gave up with ServerDelay %v, the server asked for %v", re.ServerDelay, last.after)
			}
		}
	})
	t.Logf("%d runs, %d attempts, %d gave up on a server delay", retryStats.runs.Load(), retryStats.attempts.Load(), retryStats.gaveUpOnDelay.Load())
}
