package resilience

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
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
	return byAttr(t, r, "perfkit.resilience.retry.calls", "outcome")
}

// byAttr returns the int64 sum named name by the value of its attribute
// attr.
func byAttr(t *testing.T, r *sdkmetric.ManualReader, name, attr string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	eachMetric(t, r, func(m metricdata.Metrics) {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
			for _, p := range sum.DataPoints {
				v, _ := p.Attributes.Value(attribute.Key(attr))
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

	p, err := NewPipeline(PipelineConfig{
		Name: "llm", MeterProvider: mp, Clock: newAutoClock(), Timeout: time.Hour,
		Retry:    &RetryConfig{MaxAttempts: 3},
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
	assert.Equal(t, int64(3), got["perfkit.resilience.retry.calls"],
		"recovered, gave up, failed (breaker open); first-attempt successes are not counted")
	assert.Equal(t, map[string]int64{"recovered": 1, "gave_up": 1, "failed": 1}, outcomes(t, reader))
	assert.Equal(t, int64(3), got["perfkit.resilience.retries"])
	assert.Equal(t, int64(3), got["perfkit.resilience.retry.delay"])
	assert.Equal(t, int64(StateOpen), got["perfkit.resilience.breaker.state"])
	assert.Equal(t, int64(1), got["perfkit.resilience.breaker.transitions"])
	assert.Equal(t, int64(1), got["perfkit.resilience.breaker.rejections"])
}

// TestMetricNamesAndUnits pins every instrument's name and unit to
// docs/VOCABULARY.md: perfkit.resilience.*, seconds for durations, "1" for
// the state, and counters whose unit names what they count.
func TestMetricNamesAndUnits(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	ctx := context.Background()

	p, err := NewPipeline(PipelineConfig{
		Name: "units", MeterProvider: mp, Clock: newAutoClock(), Timeout: time.Hour,
		Retry:   &RetryConfig{MaxAttempts: 2},
		Breaker: &BreakerConfig{ConsecutiveFailures: 2},
	})
	require.NoError(t, err)
	_, _ = Do(ctx, p, fail) // a retry, a give-up, a transition to open
	_, _ = Do(ctx, p, fail) // a breaker rejection

	bh, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxQueue: 1, QueueTimeout: time.Millisecond, MeterProvider: mp})
	require.NoError(t, err)
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = bh.Do(ctx, func(context.Context) error { close(held); <-release; return nil })
	}()
	<-held
	assert.ErrorIs(t, bh.Do(ctx, func(context.Context) error { return nil }), ErrBulkheadFull)
	close(release)

	rl, err := NewRateLimiter(RateLimitConfig{Limit: 1, Per: time.Hour, Burst: 1, MeterProvider: mp})
	require.NoError(t, err)
	require.NoError(t, rl.Do(ctx, func(context.Context) error { return nil }))
	assert.ErrorIs(t, rl.Do(ctx, func(context.Context) error { return nil }), ErrRateLimited)

	short, err := NewPipeline(PipelineConfig{Timeout: time.Millisecond, MeterProvider: mp})
	require.NoError(t, err)
	_, err = Do(ctx, short, blockUntilDone)
	assert.ErrorIs(t, err, ErrTimeout)

	want := map[string]string{
		"perfkit.resilience.retry.calls":          "{call}",
		"perfkit.resilience.retries":              "{retry}",
		"perfkit.resilience.retry.delay":          "s",
		"perfkit.resilience.breaker.state":        "{state}",
		"perfkit.resilience.breaker.transitions":  "{transition}",
		"perfkit.resilience.breaker.rejections":   "{rejection}",
		"perfkit.resilience.bulkhead.rejections":  "{rejection}",
		"perfkit.resilience.ratelimit.rejections": "{rejection}",
		"perfkit.resilience.timeouts":             "{timeout}",
	}
	got := map[string]string{}
	eachMetric(t, reader, func(m metricdata.Metrics) { got[m.Name] = m.Unit })
	for name, unit := range want {
		assert.Equal(t, unit, got[name], "unit of %s", name)
	}
	for name := range got {
		assert.Regexp(t, `^perfkit\.resilience\.`, name)
	}
}

// TestCountersStartAtZero: a new pipeline's counters exist at 0 for its
// policy (and each retry outcome) before any call, so Prometheus's rate()
// and increase() see the first rejection, timeout or retry.
func TestCountersStartAtZero(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	_, err := NewPipeline(PipelineConfig{
		Name: "llm", MeterProvider: mp, Timeout: time.Hour,
		Retry:     &RetryConfig{MaxAttempts: 3},
		Breaker:   &BreakerConfig{},
		Bulkhead:  &BulkheadConfig{},
		RateLimit: &RateLimitConfig{},
	})
	require.NoError(t, err)
	points := map[string]int{}
	eachMetric(t, reader, func(m metricdata.Metrics) {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, p := range sum.DataPoints {
				assert.Zero(t, p.Value, m.Name)
				v, _ := p.Attributes.Value(attrPolicy)
				assert.True(t, strings.HasPrefix(v.AsString(), "llm"), "%s: policy %s", m.Name, v.AsString())
				points[m.Name]++
			}
		}
	})
	assert.Equal(t, map[string]int{
		"perfkit.resilience.breaker.rejections":   1,
		"perfkit.resilience.bulkhead.rejections":  1,
		"perfkit.resilience.ratelimit.rejections": 1,
		"perfkit.resilience.timeouts":             1,
		"perfkit.resilience.retries":              1,
		"perfkit.resilience.retry.calls":          3,
	}, points)
	assert.Equal(t, map[string]int64{"recovered": 0, "gave_up": 0, "failed": 0}, outcomes(t, reader))
}
