package metrics

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Counter is a business KPI counter (orders placed, revenue) whose attribute
// sets are bound once. Safe for concurrent use.
type Counter struct {
	c metric.Float64Counter
}

// NewCounter creates the counter name on mp (nil: otel.GetMeterProvider()).
// Pass metric.WithUnit ("{order}", "USD") and metric.WithDescription as opts.
func NewCounter(mp metric.MeterProvider, name string, opts ...metric.Float64CounterOption) (*Counter, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter(instrumentationName).Float64Counter(name, opts...)
	if err != nil {
		return nil, fmt.Errorf("metrics: counter %s: %w", name, err)
	}
	return &Counter{c: c}, nil
}

// Bind precomputes the attribute set attrs. Bind at start-up, not per call.
func (c *Counter) Bind(attrs ...attribute.KeyValue) BoundCounter {
	return BoundCounter{c: c.c, opts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}}
}

// BoundCounter is a Counter with a fixed attribute set; Add allocates
// nothing and never blocks. Get one from Counter.Bind (the zero value is not
// usable). Safe for concurrent use.
type BoundCounter struct {
	c    metric.Float64Counter
	opts []metric.AddOption
}

// Add adds v (which must not be negative) to the counter.
func (b BoundCounter) Add(ctx context.Context, v float64) { b.c.Add(ctx, v, b.opts...) }

// Inc adds 1 to the counter.
func (b BoundCounter) Inc(ctx context.Context) { b.c.Add(ctx, 1, b.opts...) }

// ValueHistogram is a business KPI histogram (order value, basket size) whose
// attribute sets are bound once. Safe for concurrent use.
type ValueHistogram struct {
	h metric.Float64Histogram
}

// NewValueHistogram creates the histogram name on mp (nil:
// otel.GetMeterProvider()). Pass metric.WithUnit, metric.WithDescription and
// metric.WithExplicitBucketBoundaries (fitting the value's range: OTel's
// default boundaries run from 0 to 10000) as opts.
func NewValueHistogram(mp metric.MeterProvider, name string, opts ...metric.Float64HistogramOption) (*ValueHistogram, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	h, err := mp.Meter(instrumentationName).Float64Histogram(name, opts...)
	if err != nil {
		return nil, fmt.Errorf("metrics: histogram %s: %w", name, err)
	}
	return &ValueHistogram{h: h}, nil
}

// Bind precomputes the attribute set attrs. Bind at start-up, not per call.
func (h *ValueHistogram) Bind(attrs ...attribute.KeyValue) BoundHistogram {
	return BoundHistogram{h: h.h, opts: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}}
}

// BoundHistogram is a ValueHistogram with a fixed attribute set; Record
// allocates nothing and never blocks. Get one from ValueHistogram.Bind (the
// zero value is not usable). Safe for concurrent use.
type BoundHistogram struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

// Record records one value.
func (b BoundHistogram) Record(ctx context.Context, v float64) { b.h.Record(ctx, v, b.opts...) }
