package resilience

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// IsTransient reports whether err is a network error that is usually gone
// on the next attempt: connection refused or timed out, in detail
// (ECONNREFUSED, ECONNRESET, ECONNABORTED, ETIMEDOUT, EPIPE, EHOSTUNREACH,
// ENETUNREACH), a net.Error whose Timeout() is true, io.ErrUnexpectedEOF
// and a per-attempt context.DeadlineExceeded. Use it as
// RetryConfig.Retryable to retry only those.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, errno := range [...]syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT,
		syscall.EPIPE, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// RetryOn returns a Retryable predicate that is true
// when errors.Is(err, t) for one of targets, e.g.
// RetryOn(syscall.ECONNREFUSED, syscall.ETIMEDOUT).
func RetryOn(targets ...error) func(error) bool {
	ts := append([]error(nil), targets...)
	return func(err error) bool {
		for _, t := range ts {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// DefaultRetryable is the default RetryConfig.Retryable: every error except
// those marked NotFailure and circuit-breaker rejections (retrying into an
// open breaker only burns attempts). Permanent errors and the caller's own
// context cancellation stop Retry before this predicate is asked.
func DefaultRetryable(err error) bool {
	return !IsNotFailure(err) && !errors.Is(err, ErrOpen) && !errors.Is(err, ErrTooManyRequests)
}
