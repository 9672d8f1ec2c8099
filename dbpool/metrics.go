package dbpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// secondsBuckets returns the explicit histogram boundaries, in seconds, of
// every duration histogram; they include the 1 s slow-query boundary.
func secondsBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10}
}

const meterName = "github.com/servio/perfkit/dbpool"

// instruments holds the pool's metric instruments, created once, and the
// precomputed attribute options the hot path passes as they are.
type instruments struct {
	opDuration metric.Float64Histogram
	slow       metric.Int64Counter
	retired    metric.Int64Counter
	timeouts   metric.Int64Counter
	waitTime   metric.Float64Histogram
	useTime    metric.Float64Histogram
	createTime metric.Float64Histogram
	leaks      metric.Int64Counter
	reg        metric.Registration

	rec  []metric.RecordOption // pool attributes
	add  []metric.AddOption
	obs  []metric.ObserveOption
	idle []metric.ObserveOption // + state=idle
	used []metric.ObserveOption // + state=used
}

func newInstruments(p *pool) (*instruments, error) {
	m := p.cfg.MeterProvider.Meter(meterName)
	pool := attribute.String("db.client.connection.pool.name", p.cfg.Name)
	set := attribute.NewSet(pool)
	in := &instruments{
		rec:  []metric.RecordOption{metric.WithAttributeSet(set)},
		add:  []metric.AddOption{metric.WithAttributeSet(set)},
		obs:  []metric.ObserveOption{metric.WithAttributeSet(set)},
		idle: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(pool, attribute.String("db.client.connection.state", "idle")))},
		used: []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(pool, attribute.String("db.client.connection.state", "used")))},
	}
	var errs []error
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(secondsBuckets()...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	observed := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		c, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	in.opDuration = seconds("db.client.operation.duration", "Duration of database client operations.")
	in.waitTime = seconds("db.client.connection.wait_time", "Time it took to obtain an open connection from the pool.")
	in.useTime = seconds("db.client.connection.use_time", "Time between borrowing a connection and returning it to the pool.")
	in.createTime = seconds("db.client.connection.create_time", "Time it took to create a new connection.")
	in.slow = counter("perfkit.dbpool.slow_queries", "{operation}", "Operations that took at least the slow-query threshold.")
	in.retired = counter("perfkit.dbpool.connection.retirements", "{connection}", "Connections closed after reaching their maximum number of uses.")
	in.timeouts = counter("db.client.connection.timeouts", "{timeout}", "Timeouts obtaining a connection: acquire and connect timeouts.")
	in.leaks = counter("perfkit.dbpool.connection.leaks", "{connection}", "Connections held longer than the leak threshold.")
	count := observed("db.client.connection.count", "{connection}", "Connections currently in the state described by db.client.connection.state.")
	maxC := observed("db.client.connection.max", "{connection}", "The maximum number of open connections allowed.")
	idleMin := observed("db.client.connection.idle.min", "{connection}", "The minimum number of idle open connections allowed.")
	idleMax := observed("db.client.connection.idle.max", "{connection}", "The maximum number of idle open connections allowed.")
	pending := observed("db.client.connection.pending_requests", "{request}", "Callers waiting for an open connection.")
	sat, err := m.Float64ObservableGauge("perfkit.dbpool.connection.saturation", metric.WithUnit("1"),
		metric.WithDescription("Connections in use divided by the maximum."))
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, fmt.Errorf("dbpool: creating metrics: %w", err)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := p.stats()
		o.ObserveInt64(count, int64(s.Idle), in.idle...)
		o.ObserveInt64(count, int64(s.InUse), in.used...)
		o.ObserveInt64(maxC, int64(s.MaxOpenConnections), in.obs...)
		o.ObserveInt64(idleMin, int64(p.cfg.MinConns), in.obs...)
		o.ObserveInt64(idleMax, int64(cmp.Or(p.cfg.MaxIdle, p.cfg.MaxOpen)), in.obs...)
		o.ObserveInt64(pending, max(p.pending.Load(), 0), in.obs...)
		o.ObserveFloat64(sat, p.saturation(s), in.obs...)
		return nil
	}, count, maxC, idleMin, idleMax, pending, sat)
	if err != nil {
		return nil, fmt.Errorf("dbpool: registering metrics callback: %w", err)
	}
	in.reg = reg
	return in, nil
}
