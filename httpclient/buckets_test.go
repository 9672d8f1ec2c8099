package httpclient

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestDurationBucketsReachOutboundLatencies: the boundaries advised on
// http.client.request.duration start at 5 ms and resolve calls up to 60 s
// (an LLM call under resilience.OpenAI's 30 s timeout lands in a bucket of
// its own, not in +Inf), and the SDK applies them.
func TestDurationBucketsReachOutboundLatencies(t *testing.T) {
	t.Parallel()
	b := durationBuckets()
	assert.Equal(t, 0.005, b[0], "first boundary")
	assert.Equal(t, 60.0, b[len(b)-1], "last boundary")
	for i := 1; i < len(b); i++ {
		assert.Less(t, b[i-1], b[i], "increasing")
		assert.LessOrEqual(t, b[i]/b[i-1], 3.0, "no gap wider than x3 between %v and %v", b[i-1], b[i])
	}

	srv := newCountingServer(t, func(http.ResponseWriter, *http.Request) {})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c := newTestClient(t, Config{MeterProvider: mp})
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	hist := collect(t, reader)["http.client.request.duration"].Data.(metricdata.Histogram[float64])
	require.Len(t, hist.DataPoints, 1)
	assert.Equal(t, b, hist.DataPoints[0].Bounds, "the SDK uses the advised boundaries")

}
