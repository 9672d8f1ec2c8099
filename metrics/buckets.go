package metrics

import (
	"slices"
	"strings"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// HTTPBuckets returns the bucket boundaries, in seconds, for
// http.server.request.duration and other request durations: the
// OpenTelemetry HTTP semantic conventions' advice (5 ms to 10 s) extended
// down to 100 µs, so that sub-millisecond handlers (a cached read) land in
// buckets of their own instead of all under 5 ms. Each call returns a new
// slice.
func HTTPBuckets() []float64 {
	return []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
}

// DBBuckets returns the bucket boundaries, in seconds, that the OpenTelemetry
// database semantic conventions advise for db.client.operation.duration.
// Each call returns a new slice.
func DBBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}
}

// durationView returns the one view Setup installs. Views in user are tried
// first; the first that matches wins, so an instrument never gets two streams.
// Otherwise, with exponential set, every histogram whose unit is "s" becomes
// a base-2 exponential histogram. The default seconds buckets are not set
// here (a view's aggregation would replace the boundaries an instrument
// advised): Provider's meters add them to the instruments that advise none.
func durationView(user []sdkmetric.View, exponential bool) sdkmetric.View {
	return func(inst sdkmetric.Instrument) (sdkmetric.Stream, bool) {
		for _, v := range user {
			if s, ok := v(inst); ok {
				return s, true
			}
		}
		if !exponential || inst.Kind != sdkmetric.InstrumentKindHistogram || inst.Unit != "s" {
			return sdkmetric.Stream{}, false
		}
		return sdkmetric.Stream{Name: inst.Name, Description: inst.Description, Unit: inst.Unit,
			Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}}, true
	}
}

// secondsMeter is a Meter that gives a duration histogram (unit "s") which
// advises no boundaries the default ones: db buckets for names starting
// with "db.", HTTP buckets for the rest.
type secondsMeter struct {
	metric.Meter
	httpB, dbB []float64
}

func (m secondsMeter) bounds(name string) []float64 {
	if strings.HasPrefix(name, "db.") {
		return m.dbB
	}
	return m.httpB
}

// Float64Histogram adds the default boundaries to a duration histogram that
// advises none.
func (m secondsMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	if c := metric.NewFloat64HistogramConfig(opts...); c.Unit() == "s" && c.ExplicitBucketBoundaries() == nil {
		opts = append(slices.Clip(opts), metric.WithExplicitBucketBoundaries(m.bounds(name)...))
	}
	return m.Meter.Float64Histogram(name, opts...)
}

// Int64Histogram adds the default boundaries to a duration histogram that
// advises none.
func (m secondsMeter) Int64Histogram(name string, opts ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	if c := metric.NewInt64HistogramConfig(opts...); c.Unit() == "s" && c.ExplicitBucketBoundaries() == nil {
		opts = append(slices.Clip(opts), metric.WithExplicitBucketBoundaries(m.bounds(name)...))
	}
	return m.Meter.Int64Histogram(name, opts...)
}
