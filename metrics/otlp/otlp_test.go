package otlp

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

// setupWith returns a provider pushing to exp only when flushed (a long
// interval, so nothing depends on how fast the machine is), left out of
// OpenTelemetry's globals and without runtime metrics (the tests count
// data points), shut down on cleanup.
func setupWith(t *testing.T, exp sdkmetric.Exporter) *metrics.Provider {
	t.Helper()
	p, err := metrics.Setup(context.Background(), metrics.Config{Exporters: []sdkmetric.Exporter{exp},
		DisablePrometheus: true, DisableGlobal: true, DisableRuntimeMetrics: true, ExportInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// httpCollector is an OTLP/HTTP endpoint counting the POSTs to /v1/metrics
// and keeping the last api-key header.
type httpCollector struct {
	*httptest.Server
	posts  atomic.Int64
	apiKey atomic.Value
}

func newHTTPCollector(t *testing.T) *httpCollector {
	c := &httpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/metrics" {
			c.apiKey.Store(r.Header.Get("Api-Key"))
			c.posts.Add(1)
		}
	}))
	t.Cleanup(c.Close) // after the provider's shutdown (cleanups run last first)
	return c
}

// grpcCollector is a real OTLP/gRPC metrics endpoint on 127.0.0.1 that
// counts the data points it receives.
type grpcCollector struct {
	collmetrics.UnimplementedMetricsServiceServer
	points atomic.Int64
	names  sync.Map // metric name → true
}

func (c *grpcCollector) Export(_ context.Context, req *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				c.names.Store(m.GetName(), true)
				c.points.Add(int64(len(m.GetSum().GetDataPoints())))
			}
		}
	}
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

func TestNewExporterGRPC(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	col := &grpcCollector{}
	collmetrics.RegisterMetricsServiceServer(srv, col)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	ctx := context.Background()
	exp, err := NewExporter(ctx, Config{Protocol: "grpc", EndpointURL: "http://" + lis.Addr().String()})
	require.NoError(t, err)
	p := setupWith(t, exp)
	c, _ := p.Meter("test").Int64Counter("grpc.counter")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	assert.Equal(t, int64(1), col.points.Load(), "the counter's data point reached the gRPC collector")
	require.NoError(t, p.Shutdown(ctx))
}

func TestNewExporterHTTPSendsHeaders(t *testing.T) {
	t.Parallel()
	col := newHTTPCollector(t)
	ctx := context.Background()
	exp, err := NewExporter(ctx, Config{Protocol: "http/protobuf", EndpointURL: col.URL + "/v1/metrics",
		Headers: map[string]string{"api-key": "k-1"}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	p := setupWith(t, exp)
	c, _ := p.Meter("test").Int64Counter("http.counter")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	assert.Equal(t, int64(1), col.posts.Load(), "one OTLP/HTTP export reached the collector")
	assert.Equal(t, "k-1", col.apiKey.Load(), "the configured header was sent")
}

func TestNewExporterRejectsUnknownProtocol(t *testing.T) {
	t.Parallel()
	_, err := NewExporter(context.Background(), Config{Protocol: "carrier-pigeon"})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

// TestFromEnv sets environment variables, so it is not parallel.
func TestFromEnv(t *testing.T) {
	ctx := context.Background()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
	exp, err := FromEnv(ctx)
	require.NoError(t, err)
	assert.Nil(t, exp, "no exporter without the variables")
	assert.False(t, EnvSet())

	col := newHTTPCollector(t)
	// The standard variable is the base URL; the exporter adds /v1/metrics.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "")
	require.True(t, EnvSet())
	exp, err = FromEnv(ctx)
	require.NoError(t, err)
	require.NotNil(t, exp)
	p := setupWith(t, exp)
	c, _ := p.Meter("test").Int64Counter("otlp.counter")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	assert.Equal(t, int64(1), col.posts.Load(), "one OTLP/HTTP export reached the collector")
	require.NoError(t, p.Shutdown(ctx))
	require.NoError(t, p.Shutdown(ctx), "Shutdown is idempotent")

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "smoke-signals")
	_, err = FromEnv(ctx)
	assert.ErrorIs(t, err, ErrInvalidConfig, "an unknown protocol in the environment")
}

// TestShutdownLeaksNothing runs serially (the parallel tests wait until
// every serial one is done), and goroutines alive when it starts are
// ignored, so goleak sees only what this Setup started: the periodic reader
// and the OTLP HTTP client's connections. Closed connections' goroutines
// get up to 15 s to return on a loaded machine.
func TestShutdownLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	defer func() {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Error(err)
				return
			}
		}
	}()
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	ctx := context.Background()
	exp, err := NewExporter(ctx, Config{EndpointURL: collector.URL + "/v1/metrics"})
	require.NoError(t, err)
	p, err := metrics.Setup(ctx, metrics.Config{Exporters: []sdkmetric.Exporter{exp},
		DisableGlobal: true, ExportInterval: time.Hour})
	require.NoError(t, err)
	c, _ := p.Meter("test").Int64Counter("leak.check")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	require.NoError(t, p.Shutdown(ctx))
}

// TestEndpointURLBaseOrFull: a base URL (with or without a path prefix) gets
// /v1/metrics appended; a URL already ending in /v1/metrics is used as it is.
func TestEndpointURLBaseOrFull(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ endpoint, want string }{
		{srv.URL, "/v1/metrics"},
		{srv.URL + "/", "/v1/metrics"},
		{srv.URL + "/v1/metrics", "/v1/metrics"},
		{srv.URL + "/otlp", "/otlp/v1/metrics"},
		{srv.URL + "/otlp/v1/metrics/", "/otlp/v1/metrics"},
	} {
		ctx := context.Background()
		exp, err := NewExporter(ctx, Config{EndpointURL: tc.endpoint})
		require.NoError(t, err)
		p := setupWith(t, exp)
		c, _ := p.Meter("test").Int64Counter("http.counter")
		c.Add(ctx, 1)
		mu.Lock()
		paths = nil
		mu.Unlock()
		require.NoError(t, p.ForceFlush(ctx))
		mu.Lock()
		assert.Equal(t, []string{tc.want}, paths, "endpoint %s", tc.endpoint)
		mu.Unlock()
		require.NoError(t, p.Shutdown(ctx))
	}
}

// TestRuntimeMetricsReachOTLP: Setup's Go runtime metrics are exported over
// OTLP too, not only scraped by Prometheus.
func TestRuntimeMetricsReachOTLP(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	col := &grpcCollector{}
	collmetrics.RegisterMetricsServiceServer(srv, col)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	ctx := context.Background()
	exp, err := NewExporter(ctx, Config{Protocol: "grpc", EndpointURL: "http://" + lis.Addr().String()})
	require.NoError(t, err)
	p, err := metrics.Setup(ctx, metrics.Config{Exporters: []sdkmetric.Exporter{exp},
		DisablePrometheus: true, DisableGlobal: true, ExportInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, p.ForceFlush(ctx))
	for _, name := range []string{"go.goroutine.count", "go.memory.used", "go.memory.allocations"} {
		_, ok := col.names.Load(name)
		assert.True(t, ok, "%s exported over OTLP", name)
	}
	require.NoError(t, p.Shutdown(ctx))
}
