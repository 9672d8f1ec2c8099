package metrics

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Names of the instruments a Tracker records and of their attributes.
const (
	// OperationDuration is the histogram (unit "s") of tracked calls, with
	// attributes operation.name and outcome ("ok", "error" or "panic").
	OperationDuration = "perfkit.operation.duration"
	// OperationErrors counts tracked calls that returned an error or
	// panicked, with attribute operation.name.
	OperationErrors = "perfkit.operation.errors"

	instrumentationName = "github.com/servio/perfkit/metrics"
)

// TrackerConfig configures NewTracker. The zero value records into
// otel.GetMeterProvider() and starts no spans.
type TrackerConfig struct {
	// MeterProvider records the instruments. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider, when set, gives every tracked call a span named after
	// the operation, with its error recorded. Default nil: no spans (a span
	// costs allocations; metrics alone cost none).
	TracerProvider trace.TracerProvider
	// Buckets are the advised duration boundaries in seconds. Default
	// HTTPBuckets(). (Advised boundaries: Setup's Config.HTTPBuckets do
	// not replace them.)
	Buckets []float64
}

// Tracker holds the instruments behind Track. Create one per provider and
// reuse it; it is safe for concurrent use.
type Tracker struct {
	duration metric.Float64Histogram
	errors   metric.Int64Counter
	tracer   trace.Tracer
}

// NewTracker creates the Tracker's instruments. It returns an error wrapping
// ErrInvalidConfig for bad buckets or the SDK's instrument error.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	b := cfg.Buckets
	if b == nil {
		b = HTTPBuckets()
	}
	if err := checkBounds(b); err != nil {
		return nil, fmt.Errorf("%w: Tracker Buckets: %w", ErrInvalidConfig, err)
	}
	m := mp.Meter(instrumentationName)
	d, err := m.Float64Histogram(OperationDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of tracked operations."),
		metric.WithExplicitBucketBoundaries(b...))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", OperationDuration, err)
	}
	e, err := m.Int64Counter(OperationErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Tracked operations that returned an error."))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", OperationErrors, err)
	}
	t := &Tracker{duration: d, errors: e}
	if cfg.TracerProvider != nil {
		t.tracer = cfg.TracerProvider.Tracer(instrumentationName)
	}
	return t, nil
}

// defaultTracker builds a Tracker on the global providers' meter. Instrument
// creation on a valid name cannot fail; if it ever did, the calls are still
// made, into no-op instruments.
func defaultTracker() *Tracker {
	t, err := NewTracker(TrackerConfig{})
	if err != nil {
		m := noop.Meter{}
		d, _ := m.Float64Histogram(OperationDuration)
		e, _ := m.Int64Counter(OperationErrors)
		return &Tracker{duration: d, errors: e}
	}
	return t
}

// Op is one named operation bound to a Tracker with its attribute sets
// precomputed. Use it where a wrapper does not fit:
//
//	start := time.Now()
//	err := doWork()
//	op.Observe(ctx, start, err)
//
// Safe for concurrent use.
type Op struct {
	t     *Tracker
	name  string
	ok    []metric.RecordOption
	fail  []metric.RecordOption
	panic []metric.RecordOption
	errs  []metric.AddOption
}

// Op binds name to t. Bind once (at wrap or start-up time), not per call.
func (t *Tracker) Op(name string) *Op {
	op := attribute.String("operation.name", name)
	return &Op{
		t:     t,
		name:  name,
		ok:    []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(op, attribute.String("outcome", "ok")))},
		fail:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(op, attribute.String("outcome", "error")))},
		panic: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(op, attribute.String("outcome", "panic")))},
		errs:  []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(op))},
	}
}

// Observe records one call that started at start and ended now with err.
// It allocates nothing and does not block; ctx only reaches the SDK (for
// exemplars).
func (o *Op) Observe(ctx context.Context, start time.Time, err error) {
	o.record(ctx, time.Since(start).Seconds(), err)
}

// record records one call that took d seconds and ended with err.
func (o *Op) record(ctx context.Context, d float64, err error) {
	if err != nil {
		o.t.duration.Record(ctx, d, o.fail...)
		o.t.errors.Add(ctx, 1, o.errs...)
		return
	}
	o.t.duration.Record(ctx, d, o.ok...)
}

// call is one tracked call in progress.
type call struct {
	op    *Op
	ctx   context.Context // with the span, when there is one
	start time.Time
	span  trace.Span // nil without a tracer
	done  bool       // fn returned; false in end means it panicked
}

func (o *Op) begin(ctx context.Context) call {
	c := call{op: o, ctx: ctx, start: time.Now()}
	if o.t.tracer != nil {
		c.ctx, c.span = o.t.tracer.Start(ctx, o.name)
	}
	return c
}

// end records the call, ending with *err, or, when fn did not return, as a
// panic (outcome "panic", counted as an error); the panic goes on unchanged.
func (c *call) end(err *error) {
	o := c.op
	if !c.done {
		o.t.duration.Record(c.ctx, time.Since(c.start).Seconds(), o.panic...)
		o.t.errors.Add(c.ctx, 1, o.errs...)
		if c.span != nil {
			c.span.SetStatus(codes.Error, "panic")
			c.span.End()
		}
		return
	}
	o.record(c.ctx, time.Since(c.start).Seconds(), *err)
	if c.span != nil {
		if *err != nil {
			c.span.RecordError(*err)
			c.span.SetStatus(codes.Error, (*err).Error())
		}
		c.span.End()
	}
}

// Track wraps fn so that every call records its duration in
// perfkit.operation.duration and, on error, counts it in
// perfkit.operation.errors, under operation.name = name: a decorator that
// gives any function its latency and error metrics. The instruments come from otel.GetMeterProvider() at wrap
// time; wrapped before any provider is set, they forward to the first one
// installed later with otel.SetMeterProvider (OpenTelemetry's global
// delegation), so wrap after Setup when a later provider may replace it.
// A call allocates nothing beyond what fn does and passes ctx to fn
// unchanged. A call that panics is recorded with outcome "panic" and counted
// as an error; the panic itself goes on unchanged, with its stack. The
// returned function is safe for concurrent use if fn is.
func Track[T any](name string, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return TrackWith(defaultTracker(), name, fn)
}

// Track1 is Track for functions that take an argument (a struct when
// there are several).
func Track1[A, T any](name string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return TrackWith1(defaultTracker(), name, fn)
}

// TrackWith is Track recording through t (and, when t has a tracer, in a
// span that is the ctx fn gets).
func TrackWith[T any](t *Tracker, name string, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	op := t.Op(name)
	return func(ctx context.Context) (v T, err error) {
		c := op.begin(ctx)
		defer c.end(&err)
		v, err = fn(c.ctx)
		c.done = true
		return v, err
	}
}

// TrackWith1 is Track1 recording through t.
func TrackWith1[A, T any](t *Tracker, name string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	op := t.Op(name)
	return func(ctx context.Context, a A) (v T, err error) {
		c := op.begin(ctx)
		defer c.end(&err)
		v, err = fn(c.ctx, a)
		c.done = true
		return v, err
	}
}
