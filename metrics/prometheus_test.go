package metrics

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scrape returns the families p.Handler serves.
func scrape(t *testing.T, p *Provider) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, 200, rec.Code)
	fams, err := ParsePrometheus(rec.Body)
	require.NoError(t, err)
	return fams
}

// TestHandlerRenamesCountGauges: Prometheus reserves _count for histograms
// and summaries, so db.client.connection.count is served as
// db_client_connections; a histogram's _count series is untouched.
func TestHandlerRenamesCountGauges(t *testing.T) {
	p := setupTest(t, Config{DisableRuntimeMetrics: true})
	ctx := context.Background()
	m := p.Meter("test")
	conns, err := m.Int64UpDownCounter("db.client.connection.count", metric.WithUnit("{connection}"))
	require.NoError(t, err)
	conns.Add(ctx, 2, metric.WithAttributes(attribute.String("db.client.connection.state", "idle")))
	boxes, err := m.Int64Gauge("test.box.count", metric.WithUnit("{box}"))
	require.NoError(t, err)
	boxes.Record(ctx, 4)
	h, err := m.Float64Histogram("test.op.duration", metric.WithUnit("s"))
	require.NoError(t, err)
	h.Record(ctx, 0.1)

	fams := scrape(t, p)
	assert.NotContains(t, fams, "db_client_connection_count")
	require.Contains(t, fams, "db_client_connections")
	assert.Equal(t, 2.0, fams["db_client_connections"].GetMetric()[0].GetGauge().GetValue())
	assert.Contains(t, fams, "test_boxes")
	assert.Contains(t, fams, "test_op_duration_seconds")
}

func TestPromCountName(t *testing.T) {
	for in, want := range map[string]string{
		"db_client_connection_count": "db_client_connections",
		"go_goroutine_count":         "go_goroutines",
		"x_process_count":            "x_processes",
		"x_batch_count":              "x_batches",
	} {
		got, ok := promCountName(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"_count", "x__count", "x_total", "count"} {
		_, ok := promCountName(in)
		assert.False(t, ok, in)
	}
}

// TestHandlerServesDurationsInSeconds: a histogram in milliseconds (as
// go-redis's instrumentation reports) is served in seconds, Prometheus's
// base unit, bounds and sum scaled; its counts are unchanged.
func TestHandlerServesDurationsInSeconds(t *testing.T) {
	p := setupTest(t, Config{DisableRuntimeMetrics: true})
	ctx := context.Background()
	m := p.Meter("test")
	h, err := m.Float64Histogram("test.use_time", metric.WithUnit("ms"), metric.WithExplicitBucketBoundaries(5, 50))
	require.NoError(t, err)
	h.Record(ctx, 20)
	c, err := m.Int64Counter("test.wait", metric.WithUnit("ns"))
	require.NoError(t, err)
	c.Add(ctx, 3_000_000)

	fams := scrape(t, p)
	assert.NotContains(t, fams, "test_use_time_milliseconds")
	require.Contains(t, fams, "test_use_time_seconds")
	hist := fams["test_use_time_seconds"].GetMetric()[0].GetHistogram()
	assert.InDelta(t, 0.02, hist.GetSampleSum(), 1e-12)
	assert.Equal(t, uint64(1), hist.GetSampleCount())
	var bounds []float64
	for _, b := range hist.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			bounds = append(bounds, b.GetUpperBound())
		}
	}
	assert.InDeltaSlice(t, []float64{0.005, 0.05}, bounds, 1e-12)
	require.Contains(t, fams, "test_wait_seconds_total")
	assert.InDelta(t, 0.003, fams["test_wait_seconds_total"].GetMetric()[0].GetCounter().GetValue(), 1e-12)
}
