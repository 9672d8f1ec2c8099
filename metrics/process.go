package metrics

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// processStats is one reading of the process's resources.
type processStats struct {
	user, system float64 // CPU seconds since the process started
	rss, virtual int64   // bytes
	fds          int64   // open file descriptors
}

// startProcessMetrics registers the OpenTelemetry semantic conventions'
// process metrics on mp, read on each collection:
//
//   - process.cpu.time (counter, s, by cpu.mode user/system)
//   - process.memory.usage (resident set, By) and process.memory.virtual (By)
//   - process.unix.file_descriptor.count ({file_descriptor}; the name that
//     replaced process.open_file_descriptor.count in semconv 1.36)
//   - process.uptime (gauge, s, since the process started)
//
// It returns an error where they cannot be read (processMetricsSupported
// is false: every system but Linux).
func startProcessMetrics(mp metric.MeterProvider) error {
	read, start, err := newProcessReader()
	if err != nil {
		return err
	}
	m := mp.Meter("github.com/servio/perfkit/metrics")
	cpu, err1 := m.Float64ObservableCounter("process.cpu.time", metric.WithUnit("s"),
		metric.WithDescription("Total CPU seconds broken down by different CPU modes."))
	mem, err2 := m.Int64ObservableUpDownCounter("process.memory.usage", metric.WithUnit("By"),
		metric.WithDescription("The amount of physical memory in use."))
	virt, err3 := m.Int64ObservableUpDownCounter("process.memory.virtual", metric.WithUnit("By"),
		metric.WithDescription("The amount of committed virtual memory."))
	fds, err4 := m.Int64ObservableUpDownCounter("process.unix.file_descriptor.count", metric.WithUnit("{file_descriptor}"),
		metric.WithDescription("Number of unix file descriptors in use by the process."))
	up, err5 := m.Float64ObservableGauge("process.uptime", metric.WithUnit("s"),
		metric.WithDescription("The time the process has been running."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return err
	}
	user := metric.WithAttributeSet(attribute.NewSet(attribute.String("cpu.mode", "user")))
	system := metric.WithAttributeSet(attribute.NewSet(attribute.String("cpu.mode", "system")))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s, err := read()
		if err != nil {
			return err
		}
		o.ObserveFloat64(cpu, s.user, user)
		o.ObserveFloat64(cpu, s.system, system)
		o.ObserveInt64(mem, s.rss)
		o.ObserveInt64(virt, s.virtual)
		o.ObserveInt64(fds, s.fds)
		o.ObserveFloat64(up, time.Since(start).Seconds())
		return nil
	}, cpu, mem, virt, fds, up)
	return err
}
