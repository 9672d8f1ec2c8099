package resilience

import (
	"context"
	"errors"
	"fmt"

	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/sony/gobreaker/v2"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error that the
	// constructors (NewPipeline, NewRetrier, NewCircuitBreaker,
	// NewTwoStepBreaker, NewBreakers, NewBulkhead, NewRateLimiter, NewBudget,
	// NewAdaptiveLimiter) return; match it with errors.Is.
	ErrInvalidConfig = errors.New("resilience: invalid config")
	// ErrOpen is returned (wrapped in a *BreakerError) when a circuit breaker
	// is open. errors.Is(err, gobreaker.ErrOpenState) also holds.
	ErrOpen = errors.New("resilience: circuit open")
	// ErrTooManyRequests is returned (wrapped in a *BreakerError) when a
	// half-open breaker already has its maximum number of probes in flight.
	// errors.Is(err, gobreaker.ErrTooManyRequests) also holds.
	ErrTooManyRequests = errors.New("resilience: circuit half-open, probe limit reached")
	// ErrBulkheadFull is returned (wrapped in a *BulkheadError) when a bulkhead
	// rejects a call.
	ErrBulkheadFull = errors.New("resilience: bulkhead full")
	// ErrRateLimited is returned (wrapped in a *RateLimitError) when a rate
	// limiter rejects a call.
	ErrRateLimited = errors.New("resilience: rate limited")
	// ErrTimeout is matched by every *TimeoutError.
	ErrTimeout = errors.New("resilience: timeout")
	// ErrRetriesExhausted is the Reason of a *RetryError when the attempts or
	// the max elapsed time ran out.
	ErrRetriesExhausted = errors.New("resilience: retries exhausted")
	// ErrRetryBudget is the Reason of a *RetryError when the shared retry
	// budget had no token left.
	ErrRetryBudget = errors.New("resilience: retry budget exhausted")
	// ErrRetryAfterTooLong is the Reason of a *RetryError when the callee
	// asked (RetryAfterer) to wait longer than the policy's MaxRetryAfter:
	// Retry never retries before the server allows, so it gives up and the
	// error carries the server's delay (RetryError.ServerDelay).
	ErrRetryAfterTooLong = errors.New("resilience: server asked to wait longer than MaxRetryAfter")
)

// RetryError is returned by Retry when it gives up on a retryable error. It
// wraps both the last error of the callee (Err) and why retrying stopped
// (Reason: ErrRetriesExhausted, ErrRetryBudget, ErrRetryAfterTooLong,
// context.Canceled or context.DeadlineExceeded), so errors.Is reaches
// either.
type RetryError struct {
	Attempts int   // attempts made, including the first
	Err      error // last error returned by the callee
	Reason   error // why retrying stopped
	// ServerDelay is the wait the last error asked for (RetryAfterer) when
	// Retry gave up instead of waiting it (Reason ErrRetryAfterTooLong,
	// context.DeadlineExceeded or ErrRetriesExhausted for MaxElapsed); 0
	// otherwise. The earliest moment a new attempt is allowed is
	// ServerDelay after the error was returned.
	ServerDelay time.Duration
}

// Error describes the attempts, why retrying stopped and the last error.
func (e *RetryError) Error() string {
	return "resilience: gave up after " + strconv.Itoa(e.Attempts) + " attempts (" + trimPrefix(e.Reason) + "): " + errString(e.Err)
}

// Unwrap returns the callee's last error and the reason retrying stopped.
func (e *RetryError) Unwrap() []error { return []error{e.Err, e.Reason} }

// TimeoutError is returned by Timeout when the callee failed after its
// deadline passed. It matches ErrTimeout and context.DeadlineExceeded with
// errors.Is, and unwraps to the callee's error too.
type TimeoutError struct {
	After   time.Duration // the timeout
	Message string        // optional caller message (TimeoutMsg)
	Err     error         // the callee's error, usually context.DeadlineExceeded
}

// Error describes the message (if any) and the timeout.
func (e *TimeoutError) Error() string {
	if e.Message != "" {
		return "resilience: " + e.Message + " (timeout after " + e.After.String() + ")"
	}
	return "resilience: timeout after " + e.After.String()
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Unwrap returns the callee's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// BreakerError is returned when a circuit breaker rejects a call. It matches
// ErrOpen or ErrTooManyRequests, and gobreaker's ErrOpenState or
// ErrTooManyRequests, with errors.Is. Breakers return preallocated values, so
// a rejection does not allocate; do not modify them.
type BreakerError struct {
	Name  string // breaker name
	State State  // StateOpen or StateHalfOpen
	err   error
	gbErr error
}

// Error describes the sentinel's message and the breaker name.
func (e *BreakerError) Error() string {
	if e.Name == "" {
		return e.err.Error()
	}
	return e.err.Error() + " (" + e.Name + ")"
}

// Unwrap returns the perfkit and gobreaker sentinels.
func (e *BreakerError) Unwrap() []error { return []error{e.err, e.gbErr} }

func newBreakerErrors(name string) (open, tooMany *BreakerError) {
	return &BreakerError{Name: name, State: StateOpen, err: ErrOpen, gbErr: gobreaker.ErrOpenState},
		&BreakerError{Name: name, State: StateHalfOpen, err: ErrTooManyRequests, gbErr: gobreaker.ErrTooManyRequests}
}

// BulkheadError is returned when a bulkhead rejects a call; it matches
// ErrBulkheadFull. Queued reports whether the call waited in the queue
// before being rejected; Err is the context's error when the caller's
// context ended that wait (so errors.Is(err, context.DeadlineExceeded) or
// context.Canceled holds too). Either way the call never reached the
// dependency, so no breaker counts it as a failure.
type BulkheadError struct {
	Name   string // bulkhead name
	Queued bool   // the call waited in the queue and timed out
	Err    error  // the context's error if it ended the wait, else nil
}

// Error describes why the bulkhead rejected the call.
func (e *BulkheadError) Error() string {
	return refusalMessage("resilience: bulkhead full", e.Queued, e.Err, e.Name)
}

// refusalMessage is the text of a refusal by a queueing policy (bulkhead,
// adaptive limiter): head, then how the wait ended, then the policy's name.
func refusalMessage(head string, queued bool, err error, name string) string {
	switch {
	case err != nil:
		head += " (" + err.Error() + " while queued)"
	case queued:
		head += " (queue wait timed out)"
	}
	if name != "" {
		head += " (" + name + ")"
	}
	return head
}

// Is reports whether target is ErrBulkheadFull.
func (e *BulkheadError) Is(target error) bool { return target == ErrBulkheadFull }

// Unwrap returns the context's error that ended the wait, or nil.
func (e *BulkheadError) Unwrap() error { return e.Err }

// RateLimitError is returned when a rate limiter rejects a call; it matches
// ErrRateLimited and carries how long until a token is free. It implements
// RetryAfterer, so Retry waits that long (or gives up, see RetryAfterer).
//
// Err is the context's error when the caller's context ended the wait for
// a token (errors.Is reaches it); the call never reached the dependency, so
// no breaker counts it as a failure.
type RateLimitError struct {
	Name  string        // rate limiter name
	Delay time.Duration // time until the call would have been allowed
	Err   error         // the context's error if it ended the wait, else nil
}

// Error describes the delay until a token frees.
func (e *RateLimitError) Error() string {
	s := "resilience: rate limited, retry after " + e.Delay.String()
	if e.Name != "" {
		s += " (" + e.Name + ")"
	}
	return s
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the context's error that ended the wait, or nil.
func (e *RateLimitError) Unwrap() error { return e.Err }

// RetryAfter returns Delay.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Delay }

// RetryAfterer is implemented by errors that carry a server-supplied delay
// (an HTTP Retry-After, a gRPC retry pushback). Retry waits exactly that
// long before the next attempt instead of its own backoff, and never less:
// when the delay is longer than the policy's MaxRetryAfter, or would pass
// the context deadline or MaxElapsed, Retry gives up with a *RetryError
// whose ServerDelay is the delay.
type RetryAfterer interface {
	RetryAfter() time.Duration
}

var _ RetryAfterer = (*RateLimitError)(nil)

// Permanent marks err so that Retry stops at once and returns err unwrapped.
// It returns backoff.Permanent(err), so errors marked for cenkalti/backoff
// are honoured too. Permanent(nil) is nil.
func Permanent(err error) error { return backoff.Permanent(err) }

func permanentCause(err error) (error, bool) {
	var p *backoff.PermanentError
	if errors.As(err, &p) {
		return p.Err, true
	}
	return nil, false
}

// NotFailure marks err as not the dependency's fault (a 4xx, a validation
// error): circuit breakers (with the default IsFailure) neither count it as
// a failure nor as a success, and Retry (with the default Retryable) does not
// retry it. errors.Is/As still reach err. NotFailure(nil)
// is nil.
func NotFailure(err error) error {
	if err == nil {
		return nil
	}
	return &notFailureError{err}
}

// IsNotFailure reports whether err was marked with NotFailure.
func IsNotFailure(err error) bool { return errors.Is(err, errNotFailureMark) }

// errNotFailureMark is an immutable marker matched by notFailureError.Is.
var errNotFailureMark = errors.New("resilience: not a failure")

type notFailureError struct{ err error }

func (e *notFailureError) Error() string        { return e.err.Error() }
func (e *notFailureError) Unwrap() error        { return e.err }
func (e *notFailureError) Is(target error) bool { return target == errNotFailureMark }

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func trimPrefix(err error) string {
	s := errString(err)
	const p = "resilience: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// invalid returns a configuration error wrapping ErrInvalidConfig:
// "resilience: invalid config: <detail>".
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
