package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

var (
	// ErrLimited is matched (errors.Is) by every *LimitedError.
	ErrLimited = errors.New("ratelimit: limited")
	// ErrInvalidN reports an AllowN cost below 1 or above the burst.
	ErrInvalidN = errors.New("ratelimit: n must be between 1 and the burst")
	// ErrUnavailable reports that Redis could not decide and the tier fails
	// closed; the Result that comes with it denies.
	ErrUnavailable = errors.New("ratelimit: redis unavailable")
	// ErrInvalidConfig is wrapped by every error of a constructor (NewGroup,
	// Group.Limiter, NewRedis, Middleware, NewClientIP, ClientIPKey) that
	// rejects its input.
	ErrInvalidConfig = errors.New("ratelimit: invalid config")
	// ErrInvalidLimit reports a Limit that cannot be used. It wraps
	// ErrInvalidConfig, so errors.Is(err, ErrInvalidConfig) holds too.
	ErrInvalidLimit = fmt.Errorf("%w: invalid limit", ErrInvalidConfig)
)

// LimitedError is returned by wrapped functions (Wrap, Wrap1) and Wait when
// the limiter denies a call. It matches ErrLimited with errors.Is, and its
// RetryAfter method satisfies resilience.RetryAfterer, so a call retried by
// resilience.Retry waits as long as the limiter asks instead of hammering
// it.
type LimitedError struct {
	Tier  string        // name of the tier that denied, when known
	Delay time.Duration // how long until the call would be allowed
}

// Error implements error.
func (e *LimitedError) Error() string {
	s := "ratelimit: limited"
	if e.Tier != "" {
		s += " by " + strconv.Quote(e.Tier)
	}
	return s + "; retry after " + e.Delay.String()
}

// Is reports whether target is ErrLimited.
func (e *LimitedError) Is(target error) bool { return target == ErrLimited }

// RetryAfter returns Delay: how long until the call would be allowed.
func (e *LimitedError) RetryAfter() time.Duration { return e.Delay }

// Refused reports true: a denied call never reached what the limit protects,
// so circuit breakers (resilience.DefaultIsFailure) do not count it as that
// dependency's failure, while retries still wait RetryAfter and try again.
func (e *LimitedError) Refused() bool { return true }

func errInvalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidConfig, msg) }
