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
	// ErrInvalidLimit reports a Limit or Tier that cannot be used.
	ErrInvalidLimit = errors.New("ratelimit: invalid limit")
	// ErrInvalidN reports an AllowN cost below 1 or above the burst.
	ErrInvalidN = errors.New("ratelimit: n must be between 1 and the burst")
	// ErrUnavailable reports that Redis could not decide and the tier fails
	// closed; the Result that comes with it denies.
	ErrUnavailable = errors.New("ratelimit: redis unavailable")
	// ErrInvalidConfig reports a configuration that cannot be used.
	ErrInvalidConfig = errors.New("ratelimit: invalid config")
)

// LimitedError is returned by wrapped functions when the limiter denies a
// call. It matches ErrLimited with errors.Is.
type LimitedError struct {
	Policy     string        // the tier that denied, when known
	RetryAfter time.Duration // how long until the call would be allowed
}

// Error implements error.
func (e *LimitedError) Error() string {
	s := "ratelimit: limited"
	if e.Policy != "" {
		s += " by " + strconv.Quote(e.Policy)
	}
	return s + "; retry after " + e.RetryAfter.String()
}

// Is reports whether target is ErrLimited.
func (e *LimitedError) Is(target error) bool { return target == ErrLimited }

func errInvalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidConfig, msg) }
