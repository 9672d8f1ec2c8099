package metrics

import (
	"context"
	"testing"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

// TestMain fails the package on leaked goroutines, waiting testenv.LeakWait
// for slow ones to end.
func TestMain(m *testing.M) { testenv.VerifyTestMain(m) }

// verifyNoLeaks is goleak.VerifyNone with testenv.FindLeaks' longer wait.
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	if err := testenv.FindLeaks(opts...); err != nil {
		t.Error(err)
	}
}

// newManual returns an SDK provider read by a ManualReader, shut down on cleanup.
func newManual(t testing.TB, opts ...sdkmetric.Option) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(append([]sdkmetric.Option{sdkmetric.WithReader(r)}, opts...)...)
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, r
}

// collect returns the metric called name, failing the test if it is absent.
func collect(t *testing.T, r sdkmetric.Reader, name string) metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	require.Failf(t, "metric not collected", "want %s", name)
	return metricdata.Metrics{}
}

// histPoints returns the float64 histogram points of m keyed by the attribute set's rendering.
func histPoints(t *testing.T, m metricdata.Metrics) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.Truef(t, ok, "%s is %T, want Histogram[float64]", m.Name, m.Data)
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, dp := range h.DataPoints {
		out[dp.Attributes.Encoded(attribute.DefaultEncoder())] = dp
	}
	return out
}
