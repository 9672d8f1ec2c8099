package health

import (
	"context"
	"errors"
	"time"
)

// Func adapts fn to a CheckFunc: nil is a pass, an error wrapped by Warn
// (anywhere in its chain) is a warn with the error's text as output, any
// other error a fail. fn gets the check's ctx and must honour it. A nil fn
// always fails.
func Func(fn func(ctx context.Context) error) CheckFunc {
	return func(ctx context.Context) Result {
		if fn == nil {
			return Result{Err: errors.New("health: nil check func")}
		}
		err := fn(ctx)
		var w *warnError
		if errors.As(err, &w) {
			return Result{Status: StatusWarn, Output: err.Error()}
		}
		return Result{Err: err}
	}
}

// Warn wraps err so that Func reports it as a warning instead of a failure.
// Warn(nil) is nil.
func Warn(err error) error {
	if err == nil {
		return nil
	}
	return &warnError{err: err}
}

type warnError struct{ err error }

func (w *warnError) Error() string { return w.err.Error() }
func (w *warnError) Unwrap() error { return w.err }

// ms expresses d in milliseconds with microsecond precision, the draft's
// usual unit for responseTime.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
