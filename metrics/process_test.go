package metrics

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestSetupProcessMetrics: the semantic conventions' process metrics reach
// every reader and Prometheus (once: the client library's process
// collector is not registered beside them), and read what the client
// library's process collector reads, the witness here.
func TestSetupProcessMetrics(t *testing.T) {
	require.True(t, processMetricsSupported, "this test runs on Linux")
	r := sdkmetric.NewManualReader()
	p := setupTest(t, Config{Readers: []sdkmetric.Reader{r}})

	// Hold 20 more descriptors open while both read.
	for i := range 20 {
		f, err := os.Create(filepath.Join(t.TempDir(), "fd"+string(rune('a'+i))))
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close() })
	}
	// The kernel splits a process's CPU time into user and system by
	// where its clock ticks landed; a young test binary may have had
	// every tick in the kernel (CI once read user = 0). Spin in user
	// mode until a tick lands there, so "user CPU > 0" checks our
	// reading, not the scheduler's luck.
	burnUserCPU(t)
	witness := prometheus.NewRegistry()
	witness.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	before, err := witness.Gather()
	require.NoError(t, err)
	ours := processReading(t, r)
	after, err := witness.Gather()
	require.NoError(t, err)

	w := func(fams []*dto.MetricFamily, name string) float64 {
		for _, f := range fams {
			if f.GetName() == name {
				m := f.GetMetric()[0]
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		require.Failf(t, "witness metric missing", "%s", name)
		return 0
	}
	fb, fa := before, after
	assert.GreaterOrEqual(t, ours.fds, int64(20), "open descriptors")
	assert.InDelta(t, w(fb, "process_open_fds"), float64(ours.fds), 3, "open descriptors: the collector's count")
	assert.GreaterOrEqual(t, float64(ours.rss), 0.5*w(fb, "process_resident_memory_bytes"), "resident memory")
	assert.LessOrEqual(t, float64(ours.rss), 2*w(fa, "process_resident_memory_bytes"), "resident memory")
	assert.InEpsilon(t, w(fb, "process_virtual_memory_bytes"), float64(ours.virtual), 0.5, "virtual memory")
	// The collector reads CPU from /proc in clock ticks (10 ms).
	cpu := ours.user + ours.system
	assert.GreaterOrEqual(t, cpu, w(fb, "process_cpu_seconds_total")-0.02, "CPU time")
	assert.LessOrEqual(t, cpu, w(fa, "process_cpu_seconds_total")+0.02, "CPU time")
	assert.Positive(t, ours.user, "user CPU")
	start := time.Unix(0, int64(w(fb, "process_start_time_seconds")*1e9))
	assert.InDelta(t, time.Since(start).Seconds(), ours.uptime, 1.5, "uptime: since the collector's start time (1 s resolution)")

	fams := scrape(t, p)
	for _, name := range []string{"process_cpu_time_seconds_total", "process_memory_usage_bytes",
		"process_memory_virtual_bytes", "process_unix_file_descriptors", "process_uptime_seconds"} {
		assert.Contains(t, fams, name, "on Prometheus")
	}
	assert.Len(t, fams["process_cpu_time_seconds_total"].GetMetric(), 2, "by cpu.mode: user and system")
	for _, name := range []string{"process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"} {
		assert.NotContains(t, fams, name, "not served twice")
	}
}

// burnUserCPU spins until getrusage credits the process some user time
// (a few ticks at most; it gives up after 30 s of wall time).
func burnUserCPU(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	x := uint64(1)
	for time.Now().Before(deadline) {
		var ru syscall.Rusage
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		if ru.Utime.Nano() > 0 {
			return
		}
		for range 1_000_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	require.Failf(t, "no user CPU", "getrusage credited no user time after 30 s of spinning (x=%d)", x)
}

type processReadingT struct {
	processStats
	uptime float64
}

// processReading collects r and returns the process metrics it read.
func processReading(t *testing.T, r sdkmetric.Reader) processReadingT {
	t.Helper()
	var out processReadingT
	seen := map[string]bool{}
	for _, m := range collectAll(t, r) {
		switch d := m.Data.(type) {
		case metricdata.Sum[float64]: // process.cpu.time
			if m.Name != "process.cpu.time" {
				continue
			}
			for _, dp := range d.DataPoints {
				mode, _ := dp.Attributes.Value("cpu.mode")
				if mode.AsString() == "user" {
					out.user = dp.Value
				} else {
					out.system = dp.Value
				}
			}
		case metricdata.Sum[int64]:
			switch m.Name {
			case "process.memory.usage":
				out.rss = d.DataPoints[0].Value
			case "process.memory.virtual":
				out.virtual = d.DataPoints[0].Value
			case "process.unix.file_descriptor.count":
				out.fds = d.DataPoints[0].Value
			default:
				continue
			}
		case metricdata.Gauge[float64]:
			if m.Name != "process.uptime" {
				continue
			}
			out.uptime = d.DataPoints[0].Value
		default:
			continue
		}
		seen[m.Name] = true
	}
	assert.Len(t, seen, 5, "process metrics collected by a reader other than Prometheus: %v", seen)
	return out
}

func collectAll(t *testing.T, r sdkmetric.Reader) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(t.Context(), &rm))
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}
