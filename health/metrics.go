package health

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/servio/perfkit/health"

// instruments are the OpenTelemetry instruments of a Checker.
type instruments struct {
	status   metric.Int64ObservableGauge
	duration metric.Float64Histogram
	reg      metric.Registration
}

// newInstruments creates the instruments once per Checker. The status gauge
// is a state set: perfkit.health.check.status{health.check.name, health.status} is 1 for the status a
// check is in and 0 for the other two, read from the cached results.
func newInstruments(mp metric.MeterProvider, c *Checker) (*instruments, error) {
	m := mp.Meter(meterName)
	var inst instruments
	var err error
	inst.status, err = m.Int64ObservableGauge("perfkit.health.check.status",
		metric.WithDescription("Current status of a health check: 1 for the status it is in, 0 for the others."),
		metric.WithUnit("{state}"))
	if err != nil {
		return nil, fmt.Errorf("health: status gauge: %w", err)
	}
	inst.duration, err = m.Float64Histogram("perfkit.health.check.duration",
		metric.WithDescription("Duration of health check runs."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
	if err != nil {
		return nil, fmt.Errorf("health: duration histogram: %w", err)
	}
	inst.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range *c.checks.Load() {
			snap := s.cur.Load()
			if snap == nil {
				continue
			}
			for st := StatusPass; st <= StatusFail; st++ {
				var v int64
				if st == snap.status {
					v = 1
				}
				o.ObserveInt64(inst.status, v, s.obs[st]...)
			}
		}
		return nil
	}, inst.status)
	if err != nil {
		return nil, fmt.Errorf("health: status callback: %w", err)
	}
	return &inst, nil
}

// precompute builds s's attribute options so recording allocates nothing.
func (inst *instruments) precompute(s *checkState) {
	for st := StatusPass; st <= StatusFail; st++ {
		set := attribute.NewSet(
			attribute.String("health.check.name", s.check.Name),
			attribute.Bool("health.check.critical", s.check.Critical),
			attribute.String("health.status", st.String()),
		)
		s.obs[st] = []metric.ObserveOption{metric.WithAttributeSet(set)}
		s.rec[st] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}
}

func (inst *instruments) recordDuration(s *checkState, st Status, d time.Duration) {
	inst.duration.Record(context.Background(), d.Seconds(), s.rec[st]...)
}

func (inst *instruments) unregister() {
	if inst.reg != nil {
		_ = inst.reg.Unregister()
	}
}
