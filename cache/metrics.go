package cache

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Stats is a snapshot of a Cache's counters since New.
type Stats struct {
	L1Hits        uint64 // reads answered by L1
	L2Hits        uint64 // reads answered by Redis
	Misses        uint64 // reads that found neither tier (a load followed in GetOrSet)
	Loads         uint64 // loader runs
	LoadErrors    uint64 // loader runs that returned an error or panicked
	SharedLoads   uint64 // callers that waited for another caller's load
	StaleServed   uint64 // stale values served while a refresh ran
	NegativeHits  uint64 // cached errors served (part of L1Hits/L2Hits)
	L2Errors      uint64 // failed Redis calls, breaker rejections included
	L2Rejected    uint64 // Redis calls skipped at once because the breaker was open
	Corrupt       uint64 // L2 values rejected by the header or codec (deleted)
	Invalidations uint64 // keys, patterns, tags and flushes invalidated, local or received
	L1Drops       uint64 // L1 writes dropped or rejected by ristretto
	Replayed      uint64 // invalidations that failed in Redis and went through later, in the background
}

// HitRatio is (L1Hits+L2Hits) / (L1Hits+L2Hits+Misses+SharedLoads), or 0
// before any read.
func (s Stats) HitRatio() float64 {
	hits := s.L1Hits + s.L2Hits
	total := hits + s.Misses + s.SharedLoads
	if total == 0 {
		return 0
	}
	return float64(hits) / float64(total)
}

type counters struct {
	l2Hits, misses, loads, loadErrors, sharedLoads, staleServed, negativeHits,
	l2Errors, l2Rejected, corrupt, invalidations, l1Drops, replayed atomic.Uint64
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (c *Cache) Stats() Stats {
	return Stats{
		L1Hits:        c.l1Hits.Load(),
		L2Hits:        c.st.l2Hits.Load(),
		Misses:        c.st.misses.Load(),
		Loads:         c.st.loads.Load(),
		LoadErrors:    c.st.loadErrors.Load(),
		SharedLoads:   c.st.sharedLoads.Load(),
		StaleServed:   c.st.staleServed.Load(),
		NegativeHits:  c.st.negativeHits.Load(),
		L2Errors:      c.st.l2Errors.Load(),
		L2Rejected:    c.st.l2Rejected.Load(),
		Corrupt:       c.st.corrupt.Load(),
		Invalidations: c.st.invalidations.Load(),
		L1Drops:       c.st.l1Drops.Load(),
		Replayed:      c.st.replayed.Load(),
	}
}

// instruments exports the counters as OpenTelemetry observable counters
// (the hot path only does an atomic add) plus a load-duration histogram.
type instruments struct {
	reg      metric.Registration
	loadDur  metric.Float64Histogram
	okAttrs  []metric.RecordOption
	errAttrs []metric.RecordOption
}

func newInstruments(c *Cache) (*instruments, error) {
	m := c.cfg.MeterProvider.Meter("github.com/servio/perfkit/cache")
	name := attribute.String("cache.name", c.cfg.Name)
	set := attribute.NewSet(name)
	l1 := metric.WithAttributeSet(attribute.NewSet(name, attribute.String("cache.tier", "l1")))
	l2 := metric.WithAttributeSet(attribute.NewSet(name, attribute.String("cache.tier", "l2")))
	base := metric.WithAttributeSet(set)

	type obs struct {
		name, unit, desc string
		read             func() uint64
		opt              metric.ObserveOption
	}
	list := []obs{
		{"perfkit.cache.hits", "{hit}", "Reads answered by the cache, by tier.", c.l1Hits.Load, l1},
		{"perfkit.cache.hits", "{hit}", "", c.st.l2Hits.Load, l2},
		{"perfkit.cache.misses", "{miss}", "Reads that found neither tier.", c.st.misses.Load, base},
		{"perfkit.cache.loads", "{load}", "Loader runs.", c.st.loads.Load, base},
		{"perfkit.cache.load_errors", "{error}", "Loader runs that failed.", c.st.loadErrors.Load, base},
		{"perfkit.cache.shared_loads", "{caller}", "Callers that shared another caller's load.", c.st.sharedLoads.Load, base},
		{"perfkit.cache.stale_hits", "{hit}", "Stale values served while refreshing.", c.st.staleServed.Load, base},
		{"perfkit.cache.l2.errors", "{error}", "Failed Redis calls, breaker rejections included.", c.st.l2Errors.Load, base},
		{"perfkit.cache.l2.rejections", "{rejection}", "Redis calls skipped because the breaker was open.", c.st.l2Rejected.Load, base},
		{"perfkit.cache.corrupt_values", "{value}", "L2 values rejected and deleted.", c.st.corrupt.Load, base},
		{"perfkit.cache.invalidations", "{invalidation}", "Keys, patterns, tags and flushes invalidated.", c.st.invalidations.Load, base},
		{"perfkit.cache.l1.drops", "{drop}", "L1 writes dropped or rejected.", c.st.l1Drops.Load, base},
		{"perfkit.cache.replays", "{invalidation}", "Invalidations that failed in Redis and went through later.", c.st.replayed.Load, base},
	}
	inst := make(map[string]metric.Int64ObservableCounter)
	var all []metric.Observable
	for _, o := range list {
		if _, ok := inst[o.name]; ok {
			continue
		}
		ctr, err := m.Int64ObservableCounter(o.name, metric.WithDescription(o.desc), metric.WithUnit(o.unit))
		if err != nil {
			return nil, fmt.Errorf("cache: metric %s: %w", o.name, err)
		}
		inst[o.name] = ctr
		all = append(all, ctr)
	}
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		for _, o := range list {
			ob.ObserveInt64(inst[o.name], int64(o.read()), o.opt)
		}
		return nil
	}, all...)
	if err != nil {
		return nil, fmt.Errorf("cache: metric callback: %w", err)
	}
	dur, err := m.Float64Histogram("perfkit.cache.load.duration",
		metric.WithDescription("Loader run time."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(.001, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		_ = reg.Unregister()
		return nil, fmt.Errorf("cache: metric perfkit.cache.load.duration: %w", err)
	}
	return &instruments{
		reg:      reg,
		loadDur:  dur,
		okAttrs:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(name, attribute.String("outcome", "ok")))},
		errAttrs: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(name, attribute.String("outcome", "error")))},
	}, nil
}

func (m *instruments) recordLoad(d time.Duration, err error) {
	opts := m.okAttrs
	if err != nil {
		opts = m.errAttrs
	}
	m.loadDur.Record(context.Background(), d.Seconds(), opts...)
}

func (m *instruments) close() { _ = m.reg.Unregister() }
