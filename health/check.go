package health

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalidConfig is wrapped by the error of New and Register for a
	// Config with a negative Timeout or CacheTTL, and for a check without a
	// name or Run func, with a duplicate name or with negative settings.
	ErrInvalidConfig = errors.New("health: invalid config")
	// ErrClosed is returned by Register after Close.
	ErrClosed = errors.New("health: checker closed")
	// ErrTimeout is the error of a check that did not return within its
	// timeout.
	ErrTimeout = errors.New("health: check timed out")
	// ErrPanic is the error of a check that panicked.
	ErrPanic = errors.New("health: check panicked")
)

// CheckFunc runs one check. It must honour ctx: ctx is cancelled when the
// check's timeout passes or the Checker closes. A CheckFunc that ignores ctx
// is still reported as timed out on time, but its goroutine runs on until it
// returns, and the check is not started again before that (it reports fail).
type CheckFunc func(ctx context.Context) Result

// Result is the outcome of one run of a check. The zero Result is a pass.
type Result struct {
	// Status is the check's status. A non-nil Err makes a pass a fail.
	Status Status
	// Err is the failure, if any. Its text (after Output) becomes the
	// check's output, passed through Redact.
	Err error
	// Output is a human-readable note, such as why the status is warn.
	// It is passed through Redact.
	Output string
	// ComponentType is the draft's componentType ("datastore", "system",
	// "component") used when Check.ComponentType is empty. Built-in checks
	// set it.
	ComponentType string
	// Measurements are the values observed, each reported under
	// "<check>:<measurement>". A check with none is reported under its name.
	// The slice is kept and served until the next run: do not modify it
	// after returning it.
	Measurements []Measurement
}

// Measurement is one observed value of a check, such as a latency or a
// connection count.
type Measurement struct {
	// Name is the measurement name, e.g. "responseTime"; checks are keyed
	// "<check name>:<Name>" in the JSON output.
	Name string
	// Value is the observedValue: any JSON-encodable value, normally a
	// number. A string value is passed through Redact.
	Value any
	// Unit is the observedUnit, e.g. "ms", "bytes", "percent".
	Unit string
	// ComponentID tells apart several measurements of one name, e.g. the
	// nodes of a cluster.
	ComponentID string
}

// Check describes a named check. Only Name and Run are required.
type Check struct {
	// Name identifies the check in output, metrics and ?exclude. It must be
	// unique, and made of letters, digits and "._-" (no ':' or ',').
	Name string
	// Run runs the check.
	Run CheckFunc
	// Critical makes a failure of this check fail the service (HTTP 503).
	// A failing non-critical check gives warn. Critical checks are also
	// startup checks.
	Critical bool
	// Startup makes /health/ready report not ready until this check has
	// passed once, even if it is not critical.
	Startup bool
	// Timeout bounds one run. Default Config.Timeout.
	Timeout time.Duration
	// Interval, when positive, runs the check in the background every
	// Interval, and requests are served from its last result. Zero runs the
	// check on demand, its result cached for Config.CacheTTL.
	Interval time.Duration
	// SlowThreshold, when positive, reports a passing run that took longer
	// as warn.
	SlowThreshold time.Duration
	// FailureThreshold is how many consecutive failed runs it takes to report
	// fail; until then failures are reported as warn. Default 1.
	FailureThreshold int
	// SuccessThreshold is how many consecutive good runs it takes a failed
	// check to be reported healthy again; until then it stays fail.
	// Default 1.
	SuccessThreshold int
	// ComponentType is the draft's componentType. Default the Result's,
	// else "component".
	ComponentType string
	// ComponentID is the draft's componentId, e.g. a host name. Optional;
	// passed through Redact.
	ComponentID string
}

// validate checks c and fills in its defaults.
func (c *Check) validate(defTimeout time.Duration) error {
	if c.Name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidConfig)
	}
	if !validName(c.Name) {
		return fmt.Errorf("%w: name %q: use letters, digits and ._-", ErrInvalidConfig, c.Name)
	}
	if c.Run == nil {
		return fmt.Errorf("%w: %s: nil Run", ErrInvalidConfig, c.Name)
	}
	if c.Timeout < 0 || c.Interval < 0 || c.SlowThreshold < 0 || c.FailureThreshold < 0 || c.SuccessThreshold < 0 {
		return fmt.Errorf("%w: %s: negative setting", ErrInvalidConfig, c.Name)
	}
	if c.Timeout == 0 {
		c.Timeout = defTimeout
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 1
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = 1
	}
	return nil
}

func validName(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}
