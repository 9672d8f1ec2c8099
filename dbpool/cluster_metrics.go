package dbpool

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// clusterInstruments are a Cluster's per-replica metrics. The attribute
// maps are built once and only read afterwards.
type clusterInstruments struct {
	reads     metric.Int64Counter
	fallbacks metric.Int64Counter
	reg       metric.Registration

	readOpts map[string][]metric.AddOption            // by pool name
	fallOpts map[string]map[string][]metric.AddOption // by pool name, reason
}

func newClusterInstruments(c *Cluster) (*clusterInstruments, error) {
	m := c.cfg.MeterProvider.Meter(meterName)
	in := &clusterInstruments{readOpts: map[string][]metric.AddOption{}, fallOpts: map[string]map[string][]metric.AddOption{}}
	poolAttr := func(name string) attribute.KeyValue { return attribute.String("db.client.connection.pool.name", name) }
	fall := func(name, reason string) {
		if in.fallOpts[name] == nil {
			in.fallOpts[name] = map[string][]metric.AddOption{}
		}
		in.fallOpts[name][reason] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(poolAttr(name), attribute.String("reason", reason)))}
	}
	pname := c.primary.Config().Name
	for _, reason := range []string{reasonNone, reasonUnusable, reasonReadYourWrite} {
		fall(pname, reason)
	}
	obs := make([][]metric.ObserveOption, len(c.replicas))
	for i, r := range c.replicas {
		in.readOpts[r.name] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(poolAttr(r.name)))}
		fall(r.name, "error")
		obs[i] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(poolAttr(r.name)))}
	}
	var err error
	if in.reads, err = m.Int64Counter("perfkit.dbpool.replica.reads", metric.WithUnit("{read}"),
		metric.WithDescription("Reads routed to a replica.")); err != nil {
		return nil, fmt.Errorf("dbpool: creating metrics: %w", err)
	}
	if in.fallbacks, err = m.Int64Counter("perfkit.dbpool.replica.fallbacks", metric.WithUnit("{read}"),
		metric.WithDescription("Reads run on the primary instead of a replica, by reason: no_replica, unusable, read_your_writes (on the primary's pool name), error (on the failing replica's).")); err != nil {
		return nil, fmt.Errorf("dbpool: creating metrics: %w", err)
	}
	lag, err1 := m.Float64ObservableGauge("perfkit.dbpool.replica.lag", metric.WithUnit("s"),
		metric.WithDescription("How far the replica's replay is behind the primary, at the last check."))
	state, err2 := m.Int64ObservableGauge("perfkit.dbpool.replica.state", metric.WithUnit("{state}"),
		metric.WithDescription("1 while the replica receives reads, 0 while it is out (failing its check or over MaxLag)."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("dbpool: creating metrics: %w", err)
	}
	in.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, r := range c.replicas {
			o.ObserveFloat64(lag, float64(r.lagNanos.Load())/1e9, obs[i]...)
			var s int64
			if r.usable.Load() {
				s = 1
			}
			o.ObserveInt64(state, s, obs[i]...)
		}
		return nil
	}, lag, state)
	if err != nil {
		return nil, fmt.Errorf("dbpool: registering metrics callback: %w", err)
	}
	return in, nil
}

func (in *clusterInstruments) read(ctx context.Context, name string) {
	in.reads.Add(ctx, 1, in.readOpts[name]...)
}

func (in *clusterInstruments) fallback(ctx context.Context, name, reason string) {
	in.fallbacks.Add(ctx, 1, in.fallOpts[name][reason]...)
}
