package health

import (
	"fmt"
	"net/http"
)

// Status is the health of a check or of the service. Statuses are ordered
// from best to worst, so the worse of two is the larger. The zero value is
// StatusPass.
type Status uint8

// The statuses of draft-inadarei-api-health-check.
const (
	// StatusPass means healthy.
	StatusPass Status = iota
	// StatusWarn means healthy with concerns: degraded, slow, or a
	// non-critical dependency failing. It is served with HTTP 200.
	StatusWarn
	// StatusFail means unhealthy. It is served with HTTP 503.
	StatusFail
)

// String returns "pass", "warn" or "fail".
func (s Status) String() string {
	switch s {
	case StatusPass:
		return "pass"
	case StatusWarn:
		return "warn"
	case StatusFail:
		return "fail"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// MarshalText encodes s as its String form.
func (s Status) MarshalText() ([]byte, error) {
	if s > StatusFail {
		return nil, fmt.Errorf("health: invalid status %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes the draft's status words: pass, ok and up mean
// StatusPass; warn means StatusWarn; fail, error and down mean StatusFail.
func (s *Status) UnmarshalText(b []byte) error {
	switch string(b) {
	case "pass", "ok", "up":
		*s = StatusPass
	case "warn":
		*s = StatusWarn
	case "fail", "error", "down":
		*s = StatusFail
	default:
		return fmt.Errorf("health: unknown status %q", b)
	}
	return nil
}

// HTTPStatus returns 200 for pass and warn and 503 for fail.
func (s Status) HTTPStatus() int {
	if s >= StatusFail {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// worse returns the worse of two statuses.
func worse(a, b Status) Status {
	if b > a {
		return b
	}
	return a
}

// effective is what a check in status s contributes to the service's
// status: a failing non-critical check only warns.
func effective(s Status, critical bool) Status {
	if s == StatusFail && !critical {
		return StatusWarn
	}
	return s
}
