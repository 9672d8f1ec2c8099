package bench

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/benchcpu"
	"github.com/servio/perfkit/metrics"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func metricsProvider(b *testing.B) *sdkmetric.MeterProvider {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// BenchmarkMetricsTrack: metrics.Track against the same measurement written
// by hand with a raw OTel histogram and a precomputed attribute set (the
// fastest OTel use), and with per-call WithAttributes (the common one).
func BenchmarkMetricsTrack(b *testing.B) {
	ctx := context.Background()
	work := func(context.Context) (int, error) { return 1, nil }
	b.Run("perfkit", func(b *testing.B) {
		tr, err := metrics.NewTracker(metrics.TrackerConfig{MeterProvider: metricsProvider(b)})
		if err != nil {
			b.Fatal(err)
		}
		fn := metrics.TrackWith(tr, "order.create", work)
		benchcpu.ThreadLoop(b, func() { _, _ = fn(ctx) })
	})
	b.Run("otel-precomputed", func(b *testing.B) {
		h, _ := metricsProvider(b).Meter("raw").Float64Histogram("op.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(metrics.HTTPBuckets()...))
		opts := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("operation.name", "order.create"), attribute.String("outcome", "ok")))}
		benchcpu.ThreadLoop(b, func() {
			start := time.Now()
			if _, err := work(ctx); err == nil {
				h.Record(ctx, time.Since(start).Seconds(), opts...)
			}
		})
	})
	b.Run("otel-withattributes", func(b *testing.B) {
		h, _ := metricsProvider(b).Meter("raw").Float64Histogram("op.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(metrics.HTTPBuckets()...))
		benchcpu.ThreadLoop(b, func() {
			start := time.Now()
			_, _ = work(ctx)
			h.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
				attribute.String("operation.name", "order.create"), attribute.String("outcome", "ok")))
		})
	})
}

type nopResponseWriter struct{ h http.Header }

func (w *nopResponseWriter) Header() http.Header         { return w.h }
func (w *nopResponseWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopResponseWriter) WriteHeader(int)             {}

// BenchmarkMetricsHTTPServer: a ServeMux route bare, behind
// metrics.HTTPMiddleware and behind otelhttp (metrics into the same SDK
// provider, a no-op tracer provider so only metrics cost).
func BenchmarkMetricsHTTPServer(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	req, _ := http.NewRequest("GET", "http://example.com/orders/42", nil)
	w := &nopResponseWriter{h: http.Header{}}

	mw, err := metrics.NewHTTPMiddleware(metrics.HTTPConfig{MeterProvider: metricsProvider(b)})
	if err != nil {
		b.Fatal(err)
	}
	oh := otelhttp.NewHandler(mux, "servio",
		otelhttp.WithMeterProvider(metricsProvider(b)),
		otelhttp.WithTracerProvider(tracenoop.NewTracerProvider()))

	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", mux}, {"perfkit", mw.Wrap(mux)}, {"otelhttp", oh}} {
		b.Run(c.name, func(b *testing.B) {
			benchcpu.ThreadLoop(b, func() { c.h.ServeHTTP(w, req) })
		})
	}
}
