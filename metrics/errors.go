package metrics

import "errors"

var (
	// ErrClosed is returned by StatsDExporter.Export after Shutdown.
	ErrClosed = errors.New("metrics: closed")
	// ErrInvalidConfig is wrapped by every configuration error a constructor returns.
	ErrInvalidConfig = errors.New("metrics: invalid config")
	// ErrNoData is returned by the percentile helpers when the histogram has no observations.
	ErrNoData = errors.New("metrics: no data")
)
