//go:build !unix

package health

import (
	"errors"
	"time"
)

// processCPU is not available here.
func processCPU() (time.Duration, error) {
	return 0, errors.New("health: process CPU time not available on this platform")
}
