package ratelimit

import (
	"context"
	"time"
)

// Wrap returns fn limited by l under one key: a call the limiter denies
// returns a *LimitedError (errors.Is(err, ErrLimited)) without calling fn.
// A limiter error with a denying Result (Redis down, fail-closed tier) is
// returned as it is; fn is not called.
func Wrap[T any](l Limiter, key string, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		if err := allow(ctx, l, key); err != nil {
			var zero T
			return zero, err
		}
		return fn(ctx)
	}
}

// Wrap1 is Wrap for functions of one argument, limited under key(arg)
// (for example the user id in a request struct).
func Wrap1[A, T any](l Limiter, key func(A) string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		if err := allow(ctx, l, key(a)); err != nil {
			var zero T
			return zero, err
		}
		return fn(ctx, a)
	}
}

// WrapWait is Wrap that waits (see Wait) instead of failing when limited.
func WrapWait[T any](l Limiter, key string, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		if err := Wait(ctx, l, key); err != nil {
			var zero T
			return zero, err
		}
		return fn(ctx)
	}
}

// WrapWait1 is Wrap1 that waits (see Wait) instead of failing when
// limited.
func WrapWait1[A, T any](l Limiter, key func(A) string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		if err := Wait(ctx, l, key(a)); err != nil {
			var zero T
			return zero, err
		}
		return fn(ctx, a)
	}
}

func allow(ctx context.Context, l Limiter, key string) error {
	r, err := l.Allow(ctx, key)
	if err != nil && !r.Allowed {
		return err
	}
	if !r.Allowed {
		return &LimitedError{Tier: r.Tier, Delay: r.RetryAfter}
	}
	return nil
}

// Wait blocks until l allows one event for key, retrying after each
// denial's RetryAfter. It returns ctx's error if ctx ends first, and a
// *LimitedError at once when the wait would outlast ctx's deadline. A
// limiter error that denies (Redis down, fail-closed tier) is returned.
func Wait(ctx context.Context, l Limiter, key string) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		r, err := l.Allow(ctx, key)
		if err != nil && !r.Allowed {
			return err
		}
		if r.Allowed {
			return nil
		}
		wait := max(r.RetryAfter, time.Millisecond)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return &LimitedError{Tier: r.Tier, Delay: r.RetryAfter}
		}
		if t == nil {
			t = time.NewTimer(wait)
		} else {
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
