package cache_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/cache"
)

func TestMetricsExported(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c := newL1(t, cache.Config{MeterProvider: mp, Name: "menus"})
	ctx := t.Context()
	load := func(context.Context) (int, error) { return 1, nil }
	for range 3 {
		_, err := cache.GetOrSet(ctx, c, "k", 0, load)
		require.NoError(t, err)
	}
	require.NoError(t, c.Delete(ctx, "k"))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	sums := map[string]int64{}
	var loadCount uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				assert.Regexp(t, `^\{[a-z]+\}$`, m.Unit, m.Name+": a count names what it counts")
				assert.NotEqual(t, "{event}", m.Unit, m.Name)
				for _, p := range d.DataPoints {
					name, _ := p.Attributes.Value("cache.name")
					assert.Equal(t, "menus", name.AsString())
					key := m.Name
					if tier, ok := p.Attributes.Value(attribute.Key("cache.tier")); ok {
						key += "/" + tier.AsString()
					}
					sums[key] = p.Value
				}
			case metricdata.Histogram[float64]:
				assert.Equal(t, "s", m.Unit)
				for _, p := range d.DataPoints {
					loadCount += p.Count
				}
			}
		}
	}
	assert.Equal(t, int64(2), sums["perfkit.cache.hits/l1"])
	assert.Equal(t, int64(0), sums["perfkit.cache.hits/l2"])
	assert.Equal(t, int64(1), sums["perfkit.cache.misses"])
	assert.Equal(t, int64(1), sums["perfkit.cache.loads"])
	assert.Equal(t, int64(1), sums["perfkit.cache.invalidations"])
	assert.Contains(t, sums, "perfkit.cache.l2.errors")
	assert.Contains(t, sums, "perfkit.cache.corrupt_values")
	assert.Contains(t, sums, "perfkit.cache.l1.drops")
	assert.Contains(t, sums, "perfkit.cache.l2.rejections")
	assert.Contains(t, sums, "perfkit.cache.stale_hits")
	assert.Contains(t, sums, "perfkit.cache.replays")
	assert.Equal(t, uint64(1), loadCount, "load duration recorded")
	assert.InDelta(t, 2.0/3, c.Stats().HitRatio(), 1e-9)
}
