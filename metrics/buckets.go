package metrics

import (
	"slices"
	"strings"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// HTTPBuckets returns the bucket boundaries, in seconds, that the OpenTelemetry
// HTTP semantic conventions advise for http.server.request.duration and
// http.client.request.duration. Each call returns a new slice.
func HTTPBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
}

// DBBuckets returns the bucket boundaries, in seconds, that the OpenTelemetry
// database semantic conventions advise for db.client.operation.duration.
// Each call returns a new slice.
func DBBuckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}
}

// durationView returns the one view Setup installs. Views in user are tried
// first; the first that matches wins, so an instrument never gets two streams.
// Otherwise every histogram whose unit is "s" gets seconds buckets: DB
// buckets for names starting with "db.", HTTP buckets for the rest, or a
// base-2 exponential histogram when exponential is set.
func durationView(user []sdkmetric.View, httpB, dbB []float64, exponential bool) sdkmetric.View {
	return func(inst sdkmetric.Instrument) (sdkmetric.Stream, bool) {
		for _, v := range user {
			if s, ok := v(inst); ok {
				return s, true
			}
		}
		if inst.Kind != sdkmetric.InstrumentKindHistogram || inst.Unit != "s" {
			return sdkmetric.Stream{}, false
		}
		s := sdkmetric.Stream{Name: inst.Name, Description: inst.Description, Unit: inst.Unit}
		switch {
		case exponential:
			s.Aggregation = sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}
		case strings.HasPrefix(inst.Name, "db."):
			s.Aggregation = sdkmetric.AggregationExplicitBucketHistogram{Boundaries: slices.Clone(dbB)}
		default:
			s.Aggregation = sdkmetric.AggregationExplicitBucketHistogram{Boundaries: slices.Clone(httpB)}
		}
		return s, true
	}
}
