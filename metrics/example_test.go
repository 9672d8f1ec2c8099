package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/servio/perfkit/metrics"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Setup with the Prometheus exporter; its handler serves /health/metrics.
func ExampleSetup() {
	ctx := context.Background()
	p, err := metrics.Setup(ctx, metrics.Config{ServiceName: "servio", DisableRuntimeMetrics: true})
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	orders, _ := metrics.NewCounter(p, "servio.orders", metric.WithUnit("{order}"))
	web := orders.Bind(attribute.String("channel", "web"))
	web.Inc(ctx)
	web.Inc(ctx)

	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/health/metrics", nil))
	fams, _ := metrics.ParsePrometheus(rec.Body)
	fmt.Println(fams["servio_orders_total"].GetMetric()[0].GetCounter().GetValue())
	// Output: 2
}

// Track1 wraps a function of one argument so that every call records its
// duration and, on error, counts it. Setup makes p the global provider, so
// the wrapper (which resolves otel.GetMeterProvider() when it wraps) records
// into p.
func ExampleTrack1() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	prevProvider, prevHandler := otel.GetMeterProvider(), otel.GetErrorHandler()
	p, _ := metrics.Setup(ctx, metrics.Config{DisablePrometheus: true,
		Readers: []sdkmetric.Reader{reader}})
	defer p.Shutdown(ctx)
	// A service keeps p global until it exits; this example shares its
	// process with the tests, so it puts the previous globals back first.
	defer func() {
		otel.SetMeterProvider(prevProvider)
		otel.SetErrorHandler(prevHandler)
	}()

	createOrder := metrics.Track1("order.create", func(_ context.Context, items int) (string, error) {
		if items == 0 {
			return "", errors.New("empty order")
		}
		return "order-1", nil
	})
	id, _ := createOrder(ctx, 3)
	_, err := createOrder(ctx, 0)
	fmt.Println(id, err)

	pct, _ := metrics.ReadPercentiles(ctx, reader, metrics.OperationDuration, nil)
	fmt.Println("observations:", pct.Count)
	// Output:
	// order-1 empty order
	// observations: 2
}

// A Tracker records into an explicit provider; Op instruments code that is
// not a function of the wrapped shape.
func ExampleTracker_Op() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	tr, _ := metrics.NewTracker(metrics.TrackerConfig{MeterProvider: mp})
	getMenu := metrics.TrackWith(tr, "menu.get", func(context.Context) ([]string, error) {
		return []string{"pizza"}, nil
	})
	menu, _ := getMenu(ctx)
	fmt.Println(menu)
	// Output: [pizza]
}

// The middleware goes around the ServeMux; http.route is the path of the
// pattern that matched.
func ExampleHTTPMiddleware_Wrap() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	mw, _ := metrics.NewHTTPMiddleware(metrics.HTTPConfig{MeterProvider: mp})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, _ *http.Request) {})
	handler := mw.Wrap(mux)

	for _, id := range []string{"1", "2", "3"} {
		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/"+id, nil))
	}
	pct, _ := metrics.ReadPercentiles(ctx, reader, metrics.HTTPServerDuration, func(s attribute.Set) bool {
		route, _ := s.Value("http.route")
		return route.AsString() == "/orders/{id}"
	})
	fmt.Println("requests for /orders/{id}:", pct.Count)
	// Output: requests for /orders/{id}: 3
}

// StatsD/DogStatsD output for DataDog or Graphite, added through Setup.
func ExampleStatsDConfig() {
	ctx := context.Background()
	p, err := metrics.Setup(ctx, metrics.Config{
		DisablePrometheus: true,
		StatsD: &metrics.StatsDConfig{
			Addr:       "127.0.0.1:8125",
			NamePrefix: "servio",
			Tags:       []attribute.KeyValue{attribute.String("env", "dev")},
		},
	})
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)
	fmt.Println(p.StatsD() != nil)
	// Output: true
}

func ExampleQuantile() {
	bounds := []float64{0.1, 0.5, 1}
	counts := []uint64{50, 45, 5, 0} // last: above 1 s
	p95, _ := metrics.Quantile(0.95, bounds, counts)
	fmt.Printf("p95 = %.2f s\n", p95)
	// Output: p95 = 0.50 s
}

type tenantKey struct{}

// Layers that replace the request (r.WithContext) hide the mux's pattern
// from an outer middleware; ReportRoute around the mux carries it out.
func ExampleReportRoute() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /menu-items/{id}", func(http.ResponseWriter, *http.Request) {})
	withTenant := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, "t1")))
		})
	}
	mw, _ := metrics.NewHTTPMiddleware(metrics.HTTPConfig{MeterProvider: mp})
	handler := mw.Wrap(withTenant(metrics.ReportRoute(mux)))
	handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/menu-items/7", nil))

	pct, _ := metrics.ReadPercentiles(ctx, reader, metrics.HTTPServerDuration, func(s attribute.Set) bool {
		route, _ := s.Value("http.route")
		return route.AsString() == "/menu-items/{id}"
	})
	fmt.Println(pct.Count)
	// Output: 1
}

// Business KPIs: bind attribute sets once, then record without allocating.
func ExampleNewValueHistogram() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	value, _ := metrics.NewValueHistogram(mp, "servio.order.value", metric.WithUnit("USD"),
		metric.WithExplicitBucketBoundaries(5, 10, 25, 50, 100, 250))
	web := value.Bind(attribute.String("channel", "web"))
	for _, v := range []float64{8, 12, 30, 45, 60} {
		web.Record(ctx, v)
	}
	h, _ := metrics.ReadHistogram(ctx, reader, "servio.order.value", nil)
	p50, _ := h.Quantile(0.5)
	fmt.Printf("orders: %d, median value ≈ %.0f USD\n", h.Count(), p50)
	// Output: orders: 5, median value ≈ 31 USD
}
