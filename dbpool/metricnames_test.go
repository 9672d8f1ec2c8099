package dbpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/dbpool"
)

// Every instrument is either one the OpenTelemetry database semantic
// convention defines (with the convention's unit) or perfkit.dbpool.*.
func TestMetricNamesAndUnits(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		// the semantic convention's
		"db.client.operation.duration":          "s",
		"db.client.connection.count":            "{connection}",
		"db.client.connection.max":              "{connection}",
		"db.client.connection.idle.max":         "{connection}",
		"db.client.connection.idle.min":         "{connection}",
		"db.client.connection.pending_requests": "{request}",
		"db.client.connection.timeouts":         "{timeout}",
		"db.client.connection.create_time":      "s",
		"db.client.connection.wait_time":        "s",
		"db.client.connection.use_time":         "s",
		// perfkit's own
		"perfkit.dbpool.slow_queries":           "{operation}",
		"perfkit.dbpool.connection.retirements": "{connection}",
		"perfkit.dbpool.connection.leaks":       "{connection}",
		"perfkit.dbpool.connection.saturation":  "1",
		"perfkit.dbpool.replica.reads":          "{read}",
		"perfkit.dbpool.replica.fallbacks":      "{read}",
		"perfkit.dbpool.replica.lag":            "s",
		"perfkit.dbpool.replica.state":          "{state}",
	}
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	db := openSQLite(t, dbpool.Config{MaxOpen: 2, MinConns: 1, MaxIdle: 1, MaxUses: 1, MaxUsesJitter: -1,
		SlowQuery: time.Nanosecond, Logger: quiet, MeterProvider: mp})
	ctx := t.Context()
	for range 3 {
		_, err := db.ExecContext(ctx, "SELECT 1")
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return db.Stats().Retired > 0 }, 5*time.Second, 10*time.Millisecond)

	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(ctx, &rm))
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
			unit, ok := want[m.Name]
			if assert.True(t, ok, "%s is neither a semantic-convention name nor perfkit.dbpool.*", m.Name) {
				assert.Equal(t, unit, m.Unit, m.Name)
			}
		}
	}
	for _, name := range []string{"perfkit.dbpool.slow_queries", "perfkit.dbpool.connection.retirements",
		"perfkit.dbpool.connection.saturation", "db.client.connection.idle.max", "db.client.operation.duration"} {
		assert.Contains(t, got, name)
	}
	idleMax := got["db.client.connection.idle.max"].Data.(metricdata.Sum[int64])
	assert.Equal(t, int64(1), idleMax.DataPoints[0].Value, "idle.max is MaxIdle when set")
}
