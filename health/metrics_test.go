package health

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c := newTest(t, Config{MeterProvider: mp, Checks: []Check{
		{Name: "db", Critical: true, Run: fixed(Result{})},
		{Name: "llm", Run: fixed(Result{Err: errors.New("502")})},
	}})
	c.Check(context.Background())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]metricdata.Aggregation{}
	units := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
			units[m.Name] = m.Unit
		}
	}
	assert.Equal(t, map[string]string{"perfkit.health.check.status": "{state}", "perfkit.health.check.duration": "s"}, units,
		"perfkit.health.* names; a state is {state} (not 1: Prometheus would add _ratio), a duration s")
	gauge, ok := got["perfkit.health.check.status"].(metricdata.Gauge[int64])
	require.True(t, ok, "status gauge: %T", got["perfkit.health.check.status"])
	states := map[string]int64{}
	for _, dp := range gauge.DataPoints {
		name, _ := dp.Attributes.Value(attribute.Key("health.check.name"))
		st, _ := dp.Attributes.Value(attribute.Key("health.status"))
		states[name.AsString()+"/"+st.AsString()] = dp.Value
	}
	assert.Equal(t, map[string]int64{
		"db/pass": 1, "db/warn": 0, "db/fail": 0,
		"llm/pass": 0, "llm/warn": 0, "llm/fail": 1,
	}, states)

	hist, ok := got["perfkit.health.check.duration"].(metricdata.Histogram[float64])
	require.True(t, ok, "duration histogram: %T", got["perfkit.health.check.duration"])
	var runs uint64
	for _, dp := range hist.DataPoints {
		runs += dp.Count
		assert.Equal(t, 0.001, dp.Bounds[0], "bucket bounds are in seconds")
	}
	assert.Equal(t, uint64(2), runs)
}
