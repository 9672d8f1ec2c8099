package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// eachMetric collects r and calls f with every metric.
func eachMetric(t *testing.T, r *sdkmetric.ManualReader, f func(metricdata.Metrics)) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			f(m)
		}
	}
}

// collect returns the int64 sum or gauge values and histogram counts by
// instrument name, summed over attribute sets.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	eachMetric(t, r, func(m metricdata.Metrics) {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				out[m.Name] += p.Value
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				out[m.Name] += p.Value
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				out[m.Name] += int64(p.Count)
			}
		}
	})
	return out
}

// outcomes returns resilience.retry.calls by its outcome attribute.
func outcomes(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	eachMetric(t, r, func(m metricdata.Metrics) {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "resilience.retry.calls" {
			for _, p := range sum.DataPoints {
				v, _ := p.Attributes.Value("outcome")
				out[v.AsString()] += p.Value
			}
		}
	})
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()

	p, err := NewPipeline(Policy{
		Name: "llm", MeterProvider: mp, Clock: newAutoClock(), Timeout: time.Hour,
		Retry:    &RetryPolicy{MaxAttempts: 3},
		Breaker:  &BreakerConfig{ConsecutiveFailures: 3},
		Bulkhead: &BulkheadConfig{},
	})
	require.NoError(t, err)
	_, _ = Do(context.Background(), p, okCall)
	flaky, _ := failing(1, errBoom)
	_, _ = Do(context.Background(), p, flaky) // recovered after one retry
	_, _ = Do(context.Background(), p, fail)  // 3 attempts, trips the breaker
	_, _ = Do(context.Background(), p, fail)  // rejected by the open breaker

	got := collect(t, reader)
	assert.Equal(t, int64(3), got["resilience.retry.calls"],
		"recovered, gave up, failed (breaker open); first-attempt successes are not counted")
	assert.Equal(t, map[string]int64{"recovered": 1, "gave_up": 1, "failed": 1}, outcomes(t, reader))
	assert.Equal(t, int64(3), got["resilience.retry.retries"])
	assert.Equal(t, int64(3), got["resilience.retry.delay"])
	assert.Equal(t, int64(StateOpen), got["resilience.breaker.state"])
	assert.Equal(t, int64(1), got["resilience.breaker.transitions"])
	assert.Equal(t, int64(1), got["resilience.breaker.rejections"])
}
