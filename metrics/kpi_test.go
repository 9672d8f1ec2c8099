package metrics

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestKPICounterAndValueHistogram(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	ctx := context.Background()

	orders, err := NewCounter(mp, "servio.orders", metric.WithUnit("{order}"))
	require.NoError(t, err)
	revenue, err := NewCounter(mp, "servio.revenue", metric.WithUnit("USD"))
	require.NoError(t, err)
	value, err := NewValueHistogram(mp, "servio.order.value", metric.WithUnit("USD"),
		metric.WithExplicitBucketBoundaries(10, 50, 100))
	require.NoError(t, err)

	web, app := orders.Bind(attribute.String("channel", "web")), orders.Bind(attribute.String("channel", "app"))
	webRevenue := revenue.Bind(attribute.String("channel", "web"))
	webValue := value.Bind(attribute.String("channel", "web"))
	for _, v := range []float64{12.5, 40, 120} {
		web.Inc(ctx)
		webRevenue.Add(ctx, v)
		webValue.Record(ctx, v)
	}
	app.Add(ctx, 2)

	byChannel := map[string]float64{}
	for _, dp := range collect(t, r, "servio.orders").Data.(metricdata.Sum[float64]).DataPoints {
		ch, _ := dp.Attributes.Value("channel")
		byChannel[ch.AsString()] = dp.Value
	}
	assert.Equal(t, map[string]float64{"web": 3, "app": 2}, byChannel)
	rev := collect(t, r, "servio.revenue").Data.(metricdata.Sum[float64]).DataPoints
	require.Len(t, rev, 1)
	assert.InDelta(t, 172.5, rev[0].Value, 1e-9)

	pts := histPoints(t, collect(t, r, "servio.order.value"))
	dp := pts["channel=web"]
	assert.Equal(t, []float64{10, 50, 100}, dp.Bounds, "advised value buckets kept")
	assert.Equal(t, []uint64{0, 2, 0, 1}, dp.BucketCounts)
}

func TestKPIDefaultsToGlobalProviderAndRejectsBadNames(t *testing.T) {
	t.Parallel()
	_, err := NewCounter(nil, "ok.name")
	require.NoError(t, err)
	mp, _ := newManual(t)
	_, err = NewCounter(mp, "bad name with spaces")
	assert.Error(t, err)
	_, err = NewValueHistogram(mp, "also bad!")
	assert.Error(t, err)
}
