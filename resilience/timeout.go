package resilience

import (
	"context"
	"time"
)

// Timeout returns fn bounded by d: fn gets a
// context that is canceled after d. When fn fails after that deadline (and
// the caller's own context was not done first) the error is a
// *TimeoutError, which matches ErrTimeout and context.DeadlineExceeded with
// errors.Is and unwraps to fn's error. fn runs on the caller's goroutine and
// must honour its context: Timeout does not abandon it. d ≤ 0 returns fn
// unchanged.
func Timeout[T any](d time.Duration, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return TimeoutMsg(d, "", fn)
}

// TimeoutMsg is Timeout with the message the *TimeoutError carries
// ("menu service too slow").
func TimeoutMsg[T any](d time.Duration, msg string, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	if d <= 0 {
		return fn
	}
	return func(ctx context.Context) (T, error) { return timeoutDo(ctx, d, msg, fn) }
}

// Timeout1 is Timeout for functions that take an argument.
func Timeout1[A, T any](d time.Duration, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return TimeoutMsg1(d, "", fn)
}

// TimeoutMsg1 is TimeoutMsg for functions that take an argument.
func TimeoutMsg1[A, T any](d time.Duration, msg string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	if d <= 0 {
		return fn
	}
	return func(ctx context.Context, a A) (T, error) {
		return timeoutDo(ctx, d, msg, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func timeoutDo[T any](ctx context.Context, d time.Duration, msg string, fn func(context.Context) (T, error)) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := fn(tctx)
	if err != nil && ctx.Err() == nil && tctx.Err() == context.DeadlineExceeded {
		return v, &TimeoutError{After: d, Message: msg, Err: err}
	}
	return v, err
}
