package resilience

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// BulkheadConfig configures a Bulkhead. BulkheadConfig{} allows 10
// concurrent calls and rejects the 11th at once.
type BulkheadConfig struct {
	// Name labels errors and metrics. Default "bulkhead".
	Name string
	// MaxConcurrent is the number of calls allowed in flight. Default 10.
	MaxConcurrent int
	// MaxQueue is the number of calls allowed to wait for a slot when all
	// are taken. Default 0: reject at once.
	MaxQueue int
	// QueueTimeout bounds the wait of a queued call. Default 0: wait until
	// a slot frees or the context is done.
	QueueTimeout time.Duration
	// Clock supplies queue timers. Default the system clock.
	Clock Clock
	// MeterProvider for metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Bulkhead caps the number of concurrent calls to a dependency, with an
// optional bounded wait queue, so one slow dependency cannot take every
// goroutine and connection. It is safe for concurrent use; a call that finds
// a free slot does not allocate.
type Bulkhead struct {
	sem          chan struct{}
	maxQueue     int64
	queued       atomic.Int64
	queueTimeout time.Duration
	clock        Clock
	full         *BulkheadError
	timedOut     *BulkheadError
	ctxDeadline  *BulkheadError // the caller's deadline ended the wait
	ctxCanceled  *BulkheadError // the caller gave up while queued

	rejections metric.Int64Counter
	wait       metric.Float64Histogram
	rejectOpt  []metric.AddOption
	waitOpt    []metric.RecordOption
}

// NewBulkhead returns a bulkhead configured by c.
func NewBulkhead(c BulkheadConfig) (*Bulkhead, error) {
	if c.MaxConcurrent < 0 || c.MaxQueue < 0 || c.QueueTimeout < 0 {
		return nil, invalid("bulkhead config has a negative field")
	}
	if c.Name == "" {
		c.Name = "bulkhead"
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 10
	}
	b := &Bulkhead{
		sem: make(chan struct{}, c.MaxConcurrent), maxQueue: int64(c.MaxQueue), queueTimeout: c.QueueTimeout,
		clock: clockOr(c.Clock), full: &BulkheadError{Name: c.Name}, timedOut: &BulkheadError{Name: c.Name, Queued: true},
		ctxDeadline: &BulkheadError{Name: c.Name, Queued: true, Err: context.DeadlineExceeded},
		ctxCanceled: &BulkheadError{Name: c.Name, Queued: true, Err: context.Canceled},
	}
	bld := newBuilder(c.MeterProvider)
	b.rejections = bld.counter("perfkit.resilience.bulkhead.rejections", "{rejection}", "Calls rejected by a full bulkhead.")
	b.wait = bld.seconds("perfkit.resilience.bulkhead.wait", "Time queued calls waited for a bulkhead slot.")
	pol := attribute.String(attrPolicy, c.Name)
	b.rejectOpt = addOpts(pol)
	b.rejections.Add(context.Background(), 0, b.rejectOpt...) // starts at 0 for rate()
	b.waitOpt = recordOpts(pol)
	return b, bld.err()
}

// InFlight returns the number of calls holding a slot.
func (b *Bulkhead) InFlight() int { return len(b.sem) }

// Queued returns the number of calls waiting for a slot.
func (b *Bulkhead) Queued() int { return int(b.queued.Load()) }

// Do runs fn in a slot; it is the non-generic form of Isolate. It returns a
// *BulkheadError (errors.Is ErrBulkheadFull) without calling fn when no slot
// is free in time, including when ctx is done while the call is queued (its
// Err is then ctx's error, which errors.Is reaches too): a call that never
// got a slot is a local rejection, never a failure of the dependency.
func (b *Bulkhead) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := isolateDo(ctx, b, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Isolate returns fn limited by bh (see Bulkhead.Do). The returned func is
// safe for concurrent use.
func Isolate[T any](bh *Bulkhead, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return isolateDo(ctx, bh, fn) }
}

// Isolate1 is Isolate for functions that take an argument.
func Isolate1[A, T any](bh *Bulkhead, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		return isolateDo(ctx, bh, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func isolateDo[T any](ctx context.Context, b *Bulkhead, fn func(context.Context) (T, error)) (T, error) {
	if err := b.acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	defer b.release()
	return fn(ctx)
}

func (b *Bulkhead) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	default:
	}
	if b.queued.Add(1) > b.maxQueue {
		b.queued.Add(-1)
		b.rejections.Add(ctx, 1, b.rejectOpt...)
		return b.full
	}
	defer b.queued.Add(-1)
	start := b.clock.Now()
	var timeout <-chan time.Time
	if b.queueTimeout > 0 {
		t := b.clock.NewTimer(b.queueTimeout)
		defer t.Stop()
		timeout = t.C()
	}
	select {
	case b.sem <- struct{}{}:
		b.wait.Record(ctx, b.clock.Now().Sub(start).Seconds(), b.waitOpt...)
		return nil
	case <-ctx.Done():
		b.rejections.Add(ctx, 1, b.rejectOpt...)
		if ctx.Err() == context.Canceled {
			return b.ctxCanceled
		}
		return b.ctxDeadline
	case <-timeout:
		b.rejections.Add(ctx, 1, b.rejectOpt...)
		return b.timedOut
	}
}

func (b *Bulkhead) release() { <-b.sem }
