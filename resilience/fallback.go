package resilience

import "context"

// Fallback returns fn with a fallback: when fn fails, fb gets the error and
// its result is returned instead (a cached value, a degraded answer, or the
// error translated). fb is not called when the caller's context is done; the
// caller has gone. Use errors.Is(err, ErrOpen) inside fb to fall back only
// on an open breaker.
func Fallback[T any](fn func(context.Context) (T, error), fb func(ctx context.Context, err error) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) {
		v, err := fn(ctx)
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		return fb(ctx, err)
	}
}

// FallbackValue returns fn with v returned (and a nil error) whenever fn
// fails while the caller's context is still live.
func FallbackValue[T any](fn func(context.Context) (T, error), v T) func(context.Context) (T, error) {
	return Fallback(fn, func(context.Context, error) (T, error) { return v, nil })
}

// Fallback1 is Fallback for functions that take an argument; fb gets the
// argument too.
func Fallback1[A, T any](fn func(context.Context, A) (T, error), fb func(ctx context.Context, a A, err error) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		v, err := fn(ctx, a)
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		return fb(ctx, a, err)
	}
}

// FallbackValue1 is FallbackValue for functions that take an argument.
func FallbackValue1[A, T any](fn func(context.Context, A) (T, error), v T) func(context.Context, A) (T, error) {
	return Fallback1(fn, func(context.Context, A, error) (T, error) { return v, nil })
}
