package resilience

import "time"

// Clock is the source of time for retry delays, rate-limit waits, bulkhead
// queue timeouts and slow-call measurement. The zero value of every Config
// uses the system clock; tests inject a fake to drive time without sleeping.
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that perfkit uses.
type Timer interface {
	// C returns the channel on which the time is delivered.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

var _ Clock = systemClock{}

// SystemClock returns the system clock, what a nil Clock field means.
func SystemClock() Clock { return systemClock{} }

func clockOr(c Clock) Clock {
	if c == nil {
		return systemClock{}
	}
	return c
}
