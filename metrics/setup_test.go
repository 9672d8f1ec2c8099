package metrics

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

// setupTest runs Setup with DisableGlobal, so that tests running in
// parallel do not replace each other's global provider (the tests of the
// default, global install are TestSetupInstallsGlobalProvider*).
func setupTest(t *testing.T, cfg Config) *Provider {
	t.Helper()
	cfg.DisableGlobal = true
	p, err := Setup(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func TestSetupGivesDurationHistogramsSecondsBuckets(t *testing.T) {
	t.Parallel()
	r := sdkmetric.NewManualReader()
	p := setupTest(t, Config{Readers: []sdkmetric.Reader{r}, DisablePrometheus: true})
	m := p.Meter("test")
	ctx := context.Background()
	cases := []struct {
		name, unit string
		advice     []float64
		want       []float64
	}{
		{"http.client.request.duration", "s", nil, HTTPBuckets()},
		{"db.client.operation.duration", "s", nil, DBBuckets()},
		{"cache.load.duration", "s", []float64{1, 2}, []float64{1, 2}},
		{"perfkit.resilience.retry.delay", "s", []float64{.001, 10, 30, 60}, []float64{.001, 10, 30, 60}},
		{"order.value", "USD", []float64{10, 100}, []float64{10, 100}},
		{"legacy.latency", "ms", nil, []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}},
	}
	for _, c := range cases {
		opts := []metric.Float64HistogramOption{metric.WithUnit(c.unit)}
		if c.advice != nil {
			opts = append(opts, metric.WithExplicitBucketBoundaries(c.advice...))
		}
		h, err := m.Float64Histogram(c.name, opts...)
		require.NoError(t, err)
		h.Record(ctx, 0.3)
	}
	for _, c := range cases {
		pts := histPoints(t, collect(t, r, c.name))
		require.Len(t, pts, 1)
		for _, dp := range pts {
			assert.Equal(t, c.want, dp.Bounds, "bounds of %s (%s)", c.name, c.unit)
		}
	}
	assert.Contains(t, DBBuckets(), 1.0, "DB buckets have a 1 s boundary")
}

// TestHTTPBucketsResolveSubMillisecond: request durations of 30 µs and
// 300 µs land in different buckets, from 100 µs up to 10 s.
func TestHTTPBucketsResolveSubMillisecond(t *testing.T) {
	b := HTTPBuckets()
	assert.Equal(t, 0.0001, b[0])
	assert.Equal(t, 10.0, b[len(b)-1])
	assert.Subset(t, b, []float64{0.00025, 0.0005, 0.001, 0.0025, 0.005})
	require.NoError(t, checkBounds(b))
}

// TestSetupGlobalGetsDefaultBuckets: a histogram made through the global
// provider Setup installs gets the default seconds buckets too.
func TestSetupGlobalGetsDefaultBuckets(t *testing.T) {
	prev := otel.GetMeterProvider()
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	r := sdkmetric.NewManualReader()
	p, err := Setup(context.Background(), Config{Readers: []sdkmetric.Reader{r}, DisablePrometheus: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	h, err := otel.GetMeterProvider().Meter("test").Float64Histogram("global.duration", metric.WithUnit("s"))
	require.NoError(t, err)
	h.Record(context.Background(), 0.00003)
	for _, dp := range histPoints(t, collect(t, r, "global.duration")) {
		assert.Equal(t, HTTPBuckets(), dp.Bounds)
		assert.Equal(t, uint64(1), dp.BucketCounts[0], "30 µs in the first bucket, under 100 µs")
	}
}

func TestSetupExponentialAndUserViews(t *testing.T) {
	t.Parallel()
	r := sdkmetric.NewManualReader()
	custom := sdkmetric.NewView(sdkmetric.Instrument{Name: "special.duration"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{0.5}}})
	p := setupTest(t, Config{Readers: []sdkmetric.Reader{r}, DisablePrometheus: true,
		ExponentialHistograms: true, Views: []sdkmetric.View{custom}})
	ctx := context.Background()
	a, _ := p.Meter("test").Float64Histogram("job.duration", metric.WithUnit("s"))
	b, _ := p.Meter("test").Float64Histogram("special.duration", metric.WithUnit("s"))
	a.Record(ctx, 0.01)
	b.Record(ctx, 0.01)
	_, isExp := collect(t, r, "job.duration").Data.(metricdata.ExponentialHistogram[float64])
	assert.True(t, isExp, "job.duration is exponential")
	for _, dp := range histPoints(t, collect(t, r, "special.duration")) {
		assert.Equal(t, []float64{0.5}, dp.Bounds, "user view wins, one stream only")
	}
}

func TestSetupPrometheusOutputParsesBack(t *testing.T) {
	t.Parallel()
	p := setupTest(t, Config{ServiceName: "servio", ServiceVersion: "1.2.3", InstanceID: "i-1"})
	ctx := context.Background()

	tr, err := NewTracker(TrackerConfig{MeterProvider: p})
	require.NoError(t, err)
	op := tr.Op("order.create")
	// Fixed durations, so the percentile below does not depend on how fast
	// this machine runs; Observe's clock is tested in track_test.go.
	op.record(ctx, 0.2, nil)
	op.record(ctx, 0.2, errBoom)

	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: p})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(http.ResponseWriter, *http.Request) {})
	mux.Handle("GET /health/metrics", p.Handler())
	h := mw.Wrap(mux)
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/1", nil))
	}
	orders, err := NewCounter(p, "servio.orders", metric.WithUnit("{order}"))
	require.NoError(t, err)
	orders.Bind(attribute.String("channel", "web")).Add(ctx, 2)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	fams, err := ParsePrometheus(rec.Body)
	require.NoError(t, err)

	req := fams["http_server_request_duration_seconds"]
	require.NotNil(t, req, "http_server_request_duration_seconds exposed")
	var hist *dto.Histogram
	for _, m := range req.GetMetric() {
		if label(m, "http_route") == "/orders/{id}" {
			hist = m.GetHistogram()
			assert.Equal(t, "GET", label(m, "http_request_method"))
			assert.Equal(t, "200", label(m, "http_response_status_code"))
		}
	}
	require.NotNil(t, hist, "series for the route pattern")
	assert.Equal(t, uint64(3), hist.GetSampleCount())
	var bounds []float64
	for _, b := range hist.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	assert.Equal(t, HTTPBuckets(), bounds[:len(HTTPBuckets())], "seconds buckets in the exposition")

	ops := fams["perfkit_operation_duration_seconds"]
	require.NotNil(t, ops)
	assert.Len(t, ops.GetMetric(), 2, "ok and error series")
	errs := fams["perfkit_operation_errors_total"]
	require.NotNil(t, errs)
	assert.Equal(t, 1.0, errs.GetMetric()[0].GetCounter().GetValue())
	ord := fams["servio_orders_total"]
	require.NotNil(t, ord)
	assert.Equal(t, 2.0, ord.GetMetric()[0].GetCounter().GetValue())
	assert.Equal(t, "web", label(ord.GetMetric()[0], "channel"))

	target := fams["target_info"]
	require.NotNil(t, target, "resource attributes as target_info")
	assert.Equal(t, "servio", label(target.GetMetric()[0], "service_name"))
	assert.Equal(t, "1.2.3", label(target.GetMetric()[0], "service_version"))
	assert.Equal(t, "i-1", label(target.GetMetric()[0], "service_instance_id"))
	assert.Contains(t, fams, "go_goroutines", "runtime collectors registered")

	pct, err := PromPercentiles(fams, "perfkit_operation_duration_seconds", map[string]string{"outcome": "ok"})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), pct.Count)
	assert.InDelta(t, 0.175, pct.P50, 1e-9, "p50 of one 0.2 s observation: the middle of its (0.1, 0.25] bucket")
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestSetupOwnRegistryNotGlobal(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := setupTest(t, Config{Registry: reg})
	assert.Same(t, reg, p.Registry())
	c, _ := p.Meter("test").Int64Counter("own.registry.only")
	c.Add(context.Background(), 1)
	fams, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	assert.Contains(t, names, "own_registry_only_total")
	def, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range def {
		assert.NotEqual(t, "own_registry_only_total", f.GetName(), "nothing in the global registry")
	}
}

// fakeExporter is a push exporter counting the data points it receives and
// whether it was shut down.
type fakeExporter struct {
	points   atomic.Int64
	shutdown atomic.Bool
}

func newFakeExporter() *fakeExporter { return &fakeExporter{} }

func (e *fakeExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

func (e *fakeExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (e *fakeExporter) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				e.points.Add(int64(len(s.DataPoints)))
			}
		}
	}
	return nil
}

func (e *fakeExporter) ForceFlush(context.Context) error { return nil }

func (e *fakeExporter) Shutdown(context.Context) error {
	e.shutdown.Store(true)
	return nil
}

func TestSetupPushesToExporters(t *testing.T) {
	t.Parallel()
	exp := newFakeExporter()
	// A nil entry (what otlp.FromEnv returns without its variables) is skipped.
	p := setupTest(t, Config{Exporters: []sdkmetric.Exporter{nil, exp}, DisablePrometheus: true, DisableRuntimeMetrics: true, ExportInterval: time.Hour})
	c, _ := p.Meter("test").Int64Counter("pushed.counter")
	c.Add(context.Background(), 1)
	require.NoError(t, p.ForceFlush(context.Background()))
	assert.Equal(t, int64(1), exp.points.Load(), "ForceFlush pushed the counter's data point")
	require.NoError(t, p.Shutdown(context.Background()))
	assert.True(t, exp.shutdown.Load(), "Provider.Shutdown shut the exporter down")
	require.NoError(t, p.Shutdown(context.Background()), "Shutdown is idempotent")
}

func TestSetupFailureShutsExportersDown(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{ExportInterval: -1},
		{HTTPBuckets: []float64{2, 1}},
		{StatsD: &StatsDConfig{MaxPacketSize: 1}},
	} {
		exp := newFakeExporter()
		cfg.Exporters = []sdkmetric.Exporter{exp}
		cfg.DisableGlobal = true
		_, err := Setup(context.Background(), cfg)
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.True(t, exp.shutdown.Load(), "Setup owns its exporters: shut down on failure (%+v)", cfg)
	}
}

// TestSetupInstallsGlobalProvider changes OpenTelemetry's globals, so it
// is not parallel (the parallel tests start after every serial one is
// done), and puts them back on cleanup.
func TestSetupInstallsGlobalProvider(t *testing.T) {
	prevProvider, prevHandler := otel.GetMeterProvider(), otel.GetErrorHandler()
	t.Cleanup(func() {
		otel.SetMeterProvider(prevProvider)
		otel.SetErrorHandler(prevHandler)
	})
	r := sdkmetric.NewManualReader()
	p, err := Setup(context.Background(), Config{DisablePrometheus: true, Readers: []sdkmetric.Reader{r}})
	require.NoError(t, err)
	// Cleanups run last first: the globals are back before p shuts down.
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	c, err := otel.GetMeterProvider().Meter("test").Int64Counter("global.after.setup")
	require.NoError(t, err)
	c.Add(context.Background(), 3)
	assert.Equal(t, int64(3), collect(t, r, "global.after.setup").Data.(metricdata.Sum[int64]).DataPoints[0].Value,
		"a counter from the global provider records into Setup's provider")
}

// TestSetupDisableGlobal is not parallel either: it checks that the global
// provider is the one it saw before Setup.
func TestSetupDisableGlobal(t *testing.T) {
	prev := otel.GetMeterProvider()
	r := sdkmetric.NewManualReader()
	p, err := Setup(context.Background(), Config{DisablePrometheus: true, DisableGlobal: true, Readers: []sdkmetric.Reader{r}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	assert.True(t, otel.GetMeterProvider() == prev, "the global provider is untouched")
	c, err := otel.GetMeterProvider().Meter("test").Int64Counter("global.disabled")
	require.NoError(t, err)
	c.Add(context.Background(), 1)
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			assert.NotEqual(t, "global.disabled", m.Name, "nothing from the global provider reaches Setup's")
		}
	}
}

func TestSetupWithStatsD(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	p := setupTest(t, Config{StatsD: &StatsDConfig{Addr: sink.addr()}, DisablePrometheus: true, DisableRuntimeMetrics: true, ExportInterval: time.Hour})
	require.NotNil(t, p.StatsD())
	c, _ := p.Meter("test").Int64Counter("setup.statsd")
	c.Add(context.Background(), 4)
	require.NoError(t, p.ForceFlush(context.Background()))
	assert.Equal(t, map[string]float64{"setup.statsd|c|": 4}, sums(parseLines(t, sink.packets(t, p.StatsD()))))
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code, "no Prometheus handler with DisablePrometheus")
	assert.Nil(t, p.Registry(), "no registry with DisablePrometheus")
}

func TestSetupRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{ExportInterval: -1},
		{HTTPBuckets: []float64{1, 1}},
		{DBBuckets: []float64{3, 2}},
		{StatsD: &StatsDConfig{MaxPacketSize: 1}},
	} {
		cfg.DisableGlobal = true
		_, err := Setup(context.Background(), cfg)
		assert.ErrorIs(t, err, ErrInvalidConfig, "config %+v", cfg)
	}
}

// TestSetupShutdownLeaksNothing runs serially (the parallel tests wait until
// every serial one is done), and goroutines alive when it starts are
// ignored, so goleak sees only what this Setup started: periodic readers for
// an exporter and StatsD. (metrics/otlp checks the OTLP exporters' own
// connections the same way.)
func TestSetupShutdownLeaksNothing(t *testing.T) {
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	sink := newUDPSink(t)
	ctx := context.Background()
	p, err := Setup(ctx, Config{
		Exporters:      []sdkmetric.Exporter{newFakeExporter()},
		StatsD:         &StatsDConfig{Addr: sink.addr()},
		ExportInterval: time.Hour,
		DisableGlobal:  true,
	})
	require.NoError(t, err)
	c, _ := p.Meter("test").Int64Counter("leak.check")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	require.NoError(t, p.Shutdown(ctx))
}

// TestSetupResourcePrecedence sets environment variables, so it is not
// parallel: options win over OTEL_RESOURCE_ATTRIBUTES, which wins over the
// computed defaults.
func TestSetupResourcePrecedence(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env,service.version=9.9,deployment.environment.name=prod,team=orders")
	r := sdkmetric.NewManualReader()
	setupTest(t, Config{DisablePrometheus: true, Readers: []sdkmetric.Reader{r}, InstanceID: "i-7",
		Attributes: []attribute.KeyValue{attribute.String("deployment.environment.name", "staging")}})
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	got := map[string]string{}
	for _, kv := range rm.Resource.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, want := range map[string]string{
		"service.name":                "from-env",
		"service.version":             "9.9",
		"service.instance.id":         "i-7",
		"deployment.environment.name": "staging",
		"team":                        "orders",
	} {
		assert.Equal(t, want, got[k], "resource attribute %s", k)
	}
	assert.Equal(t, "go", got["telemetry.sdk.language"])
}

func TestCheckBoundsRejectsNaNAndInf(t *testing.T) {
	t.Parallel()
	for _, b := range [][]float64{{math.NaN()}, {1, math.Inf(1)}, {math.Inf(-1), 1}, {2, 1}, {1, 1}} {
		_, err := Setup(context.Background(), Config{DisablePrometheus: true, DisableGlobal: true, HTTPBuckets: b})
		assert.ErrorIs(t, err, ErrInvalidConfig, "buckets %v", b)
	}
	assert.NoError(t, checkBounds(nil))
	assert.NoError(t, checkBounds([]float64{-1, 0, 0.5}))
}

func TestBuildVersion(t *testing.T) {
	rev := func(v, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: v}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "unknown"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: rev("0123456789abcdef", "false")}, "v1.2.3"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev("0123456789abcdef", "false")}, "0123456789ab"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev("0123456789abcdef", "true")}, "0123456789ab-dirty"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
	} {
		assert.Equal(t, tc.want, buildVersion(tc.bi))
	}
}

// metricNames returns the names of the metrics r collects.
func metricNames(t *testing.T, r sdkmetric.Reader) map[string]bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = true
		}
	}
	return out
}

// TestSetupRuntimeMetricsReachEveryReader: Go runtime metrics come from
// OpenTelemetry's runtime instrumentation, so push exporters (here a
// reader) get them too, not only Prometheus; Prometheus serves each once
// (the client library's Go collector is not registered beside them).
func TestSetupRuntimeMetricsReachEveryReader(t *testing.T) {
	r := sdkmetric.NewManualReader()
	p := setupTest(t, Config{Readers: []sdkmetric.Reader{r}})
	names := metricNames(t, r)
	for _, n := range []string{"go.goroutine.count", "go.memory.used", "go.memory.allocated", "go.config.gogc"} {
		assert.True(t, names[n], "%s collected by a reader other than Prometheus", n)
	}
	fams := scrape(t, p)
	require.Contains(t, fams, "go_goroutines", "go.goroutine.count, renamed for Prometheus")
	assert.Len(t, fams["go_goroutines"].GetMetric(), 1, "one series: no second one from a Go collector")
	assert.Contains(t, fams, "go_memory_used_bytes")
	assert.NotContains(t, fams, "process_resident_memory_bytes", "the process collector is replaced by process.memory.usage")
	for name := range fams {
		assert.False(t, strings.HasPrefix(name, "go_memstats_"), "%s: the Go collector is not registered", name)
	}

	r2 := sdkmetric.NewManualReader()
	p2 := setupTest(t, Config{Readers: []sdkmetric.Reader{r2}, DisableRuntimeMetrics: true})
	assert.False(t, metricNames(t, r2)["go.goroutine.count"], "DisableRuntimeMetrics")
	assert.NotContains(t, scrape(t, p2), "process_resident_memory_bytes")
	assert.NotContains(t, scrape(t, p2), "process_memory_usage_bytes")
}
