//go:build !linux

package metrics

import (
	"errors"
	"time"
)

// processMetricsSupported reports whether startProcessMetrics works here:
// not outside Linux, where Setup registers the Prometheus client's process
// collector instead (process metrics then reach Prometheus only).
const processMetricsSupported = false

func newProcessReader() (func() (processStats, error), time.Time, error) {
	return nil, time.Time{}, errors.New("metrics: process metrics are read from /proc: Linux only")
}
