package metrics

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/internal/benchcpu"
)

// BenchmarkTrack compares a tracked call with the same measurement written by
// hand (time.Now, time.Since, Record with a precomputed attribute set) and
// with per-call WithAttributes, all into a real SDK provider.
func BenchmarkTrack(b *testing.B) {
	mp, _ := newManual(b)
	ctx := context.Background()
	work := func(context.Context) (int, error) { return 1, nil }

	b.Run("track", func(b *testing.B) {
		tr, _ := NewTracker(TrackerConfig{MeterProvider: mp})
		fn := TrackWith(tr, "order.create", work)
		benchcpu.ThreadLoop(b, func() { _, _ = fn(ctx) })
	})
	b.Run("raw-precomputed", func(b *testing.B) {
		h, _ := mp.Meter("raw").Float64Histogram("raw.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(HTTPBuckets()...))
		opts := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("operation.name", "order.create"), attribute.String("outcome", "ok")))}
		benchcpu.ThreadLoop(b, func() {
			start := time.Now()
			if _, err := work(ctx); err == nil {
				h.Record(ctx, time.Since(start).Seconds(), opts...)
			}
		})
	})
	b.Run("raw-withattributes", func(b *testing.B) {
		h, _ := mp.Meter("raw").Float64Histogram("raw2.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(HTTPBuckets()...))
		benchcpu.ThreadLoop(b, func() {
			start := time.Now()
			_, _ = work(ctx)
			h.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
				attribute.String("operation.name", "order.create"), attribute.String("outcome", "ok")))
		})
	})
}

func BenchmarkTrackParallel(b *testing.B) {
	mp, _ := newManual(b)
	tr, _ := NewTracker(TrackerConfig{MeterProvider: mp})
	fn := TrackWith(tr, "order.create", func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = fn(ctx)
		}
	})
}

// nopWriter is a reusable ResponseWriter so that the benchmark measures the
// middleware, not httptest.ResponseRecorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	req, _ := http.NewRequest("GET", "http://example.com/orders/42", nil)
	w := &nopWriter{h: http.Header{}}
	mp, _ := newManual(b)
	mw, _ := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	noActive, _ := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp, DisableActiveRequests: true})

	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", mux}, {"perfkit", mw.Wrap(mux)}, {"perfkit-noactive", noActive.Wrap(mux)}} {
		b.Run(c.name, func(b *testing.B) {
			benchcpu.ThreadLoop(b, func() { c.h.ServeHTTP(w, req) })
		})
	}
}

func BenchmarkBoundCounter(b *testing.B) {
	mp, _ := newManual(b)
	c, _ := NewCounter(mp, "servio.revenue", metric.WithUnit("USD"))
	web := c.Bind(attribute.String("channel", "web"))
	ctx := context.Background()
	benchcpu.ThreadLoop(b, func() { web.Add(ctx, 12.5) })
}

// BenchmarkStatsDExport measures one export of 100 counter series and 20
// histogram series (the exporter's work per interval, off the request path).
func BenchmarkStatsDExport(b *testing.B) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	exp, _ := NewStatsDExporter(StatsDConfig{Addr: sink.LocalAddr().String()})
	r := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(exp.Temporality))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = exp.Shutdown(context.Background()) })
	ctx := context.Background()
	c, _ := mp.Meter("b").Int64Counter("orders")
	h, _ := mp.Meter("b").Float64Histogram("op.duration", metric.WithExplicitBucketBoundaries(HTTPBuckets()...))
	record := func() {
		for i := range 100 {
			c.Add(ctx, 1, metric.WithAttributes(attribute.Int("i", i)))
		}
		for i := range 20 {
			h.Record(ctx, 0.02, metric.WithAttributes(attribute.Int("i", i)))
		}
	}
	rm := &metricdata.ResourceMetrics{}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		record()
		_ = r.Collect(ctx, rm)
		b.StartTimer()
		_ = exp.Export(ctx, rm)
	}
}
