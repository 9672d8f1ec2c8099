package resilience

import (
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

const scopeName = "github.com/servio/perfkit/resilience"

// attrPolicy names the policy instance on every instrument.
const attrPolicy = "resilience.policy"

// instrumentBuilder creates instruments once per policy and collects the
// first errors, so constructors can report them and decorators can fall back
// to no-op instruments.
type instrumentBuilder struct {
	m    metric.Meter
	errs []error
}

func newBuilder(mp metric.MeterProvider) *instrumentBuilder {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return &instrumentBuilder{m: mp.Meter(scopeName)}
}

func (b *instrumentBuilder) err() error { return errors.Join(b.errs...) }

// counter creates a counter whose unit names what it counts ("{retry}",
// "{rejection}"...).
func (b *instrumentBuilder) counter(name, unit, desc string) metric.Int64Counter {
	c, err := b.m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
	if err != nil {
		b.errs = append(b.errs, err)
		return noop.Int64Counter{}
	}
	return c
}

func (b *instrumentBuilder) seconds(name, desc string) metric.Float64Histogram {
	h, err := b.m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		b.errs = append(b.errs, err)
		return noop.Float64Histogram{}
	}
	return h
}

// addOpts precomputes the attribute option of a hot-path Add so it does not
// allocate.
func addOpts(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func recordOpts(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func noopProvider() metric.MeterProvider { return noop.NewMeterProvider() }
