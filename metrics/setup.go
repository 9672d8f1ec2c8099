package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/servio/perfkit/internal/redact"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// Options configures Setup. The zero value gives a Prometheus-only provider
// with seconds buckets on every duration histogram.
type Options struct {
	// ServiceName is the service.name resource attribute. Default: the
	// OTEL_SERVICE_NAME environment variable, else service.name in
	// OTEL_RESOURCE_ATTRIBUTES, else the executable's base name.
	ServiceName string
	// ServiceVersion is service.version. Default: service.version in
	// OTEL_RESOURCE_ATTRIBUTES, else the main module's version from the
	// build info, else "unknown".
	ServiceVersion string
	// InstanceID is service.instance.id. Default: service.instance.id in
	// OTEL_RESOURCE_ATTRIBUTES, else "<hostname>-<pid>".
	InstanceID string
	// Attributes are added to the resource (deployment.environment.name, ...)
	// over those in OTEL_RESOURCE_ATTRIBUTES.
	Attributes []attribute.KeyValue

	// Registry receives the Prometheus collector. Default: a new registry of
	// its own (never prometheus.DefaultRegisterer), with Go runtime and process
	// collectors unless NoRuntimeMetrics is set.
	Registry *prometheus.Registry
	// NoRuntimeMetrics leaves the Go and process collectors out of a registry
	// that Setup creates.
	NoRuntimeMetrics bool
	// NoPrometheus leaves the Prometheus exporter out; Handler then serves 404.
	NoPrometheus bool

	// OTLP enables OTLP export when OTLP.Enabled is set.
	OTLP OTLPOptions
	// OTLPFromEnv enables OTLP export when the standard
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
	// environment variable is set; the exporter then reads its endpoint,
	// headers and timeout from the standard variables.
	OTLPFromEnv bool

	// StatsD, when non-nil, adds a StatsD/DogStatsD exporter (see StatsDConfig).
	StatsD *StatsDConfig

	// ExportInterval is how often push exporters (OTLP, StatsD) collect.
	// Default: OTEL_METRIC_EXPORT_INTERVAL (milliseconds) when set, else 10 s.
	ExportInterval time.Duration

	// HTTPBuckets are the boundaries of every duration histogram (unit "s")
	// whose name does not start with "db.". Default HTTPBuckets(). They replace
	// both the SDK default (milliseconds) and any boundaries an instrument
	// advised; use Views to give one instrument others.
	HTTPBuckets []float64
	// DBBuckets are the boundaries of duration histograms named "db.*".
	// Default DBBuckets().
	DBBuckets []float64
	// ExponentialHistograms makes every duration histogram a base-2
	// exponential histogram (160 buckets, scale ≤ 20) instead. The Prometheus
	// text format cannot carry these (only native-histogram protobuf can).
	ExponentialHistograms bool
	// Views are tried before the duration view; the first match wins.
	Views []sdkmetric.View
	// Readers are extra readers (a ManualReader in tests or a load report).
	Readers []sdkmetric.Reader

	// SetGlobal installs the provider with otel.SetMeterProvider so that
	// every package defaulting to otel.GetMeterProvider() reports into it,
	// and routes OpenTelemetry's own errors (failed OTLP exports) to Logger
	// with otel.SetErrorHandler.
	SetGlobal bool
	// Logger receives export errors. Default slog.Default().
	Logger *slog.Logger
}

// OTLPOptions configures the optional OTLP exporter (HTTP or gRPC).
type OTLPOptions struct {
	// Enabled turns the exporter on.
	Enabled bool
	// Protocol is "http/protobuf" or "grpc". Default: the standard
	// OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL
	// variable, else "http/protobuf".
	Protocol string
	// EndpointURL is the full URL, e.g. "http://collector:4318/v1/metrics"
	// or, for gRPC, "http://collector:4317". Default: the standard
	// OTEL_EXPORTER_OTLP_* variables, else https://localhost:4318/v1/metrics
	// (gRPC: localhost:4317).
	EndpointURL string
	// Headers are sent with every request (API keys).
	Headers map[string]string
	// Timeout bounds one export. Default 10 s.
	Timeout time.Duration
}

// Provider is a configured MeterProvider with its Prometheus handler. It is
// safe for concurrent use. Shutdown flushes push exporters and releases them.
type Provider struct {
	embedded.MeterProvider

	mp       *sdkmetric.MeterProvider
	registry *prometheus.Registry
	handler  http.Handler
	statsd   *StatsDExporter

	once        sync.Once
	shutdownErr error
}

var _ metric.MeterProvider = (*Provider)(nil)

// Setup builds a Provider from opts. It returns an error wrapping
// ErrInvalidConfig for bad options, or the exporter's error. ctx bounds the
// resource detection and exporter construction only.
func Setup(ctx context.Context, opts Options) (*Provider, error) {
	if opts.ExportInterval < 0 {
		return nil, fmt.Errorf("%w: negative ExportInterval", ErrInvalidConfig)
	}
	var intervalOpts []sdkmetric.PeriodicReaderOption
	switch {
	case opts.ExportInterval > 0:
		intervalOpts = append(intervalOpts, sdkmetric.WithInterval(opts.ExportInterval))
	case os.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "":
		intervalOpts = append(intervalOpts, sdkmetric.WithInterval(10*time.Second))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	httpB, dbB := opts.HTTPBuckets, opts.DBBuckets
	if httpB == nil {
		httpB = HTTPBuckets()
	}
	if dbB == nil {
		dbB = DBBuckets()
	}
	if err := checkBounds(httpB); err != nil {
		return nil, fmt.Errorf("%w: HTTPBuckets: %w", ErrInvalidConfig, err)
	}
	if err := checkBounds(dbB); err != nil {
		return nil, fmt.Errorf("%w: DBBuckets: %w", ErrInvalidConfig, err)
	}

	res, err := newResource(ctx, opts)
	if err != nil {
		return nil, err
	}
	p := &Provider{handler: http.NotFoundHandler()}
	mpOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithView(durationView(opts.Views, httpB, dbB, opts.ExponentialHistograms)),
	}

	// Exporters built so far are shut down if a later one fails.
	var readers []sdkmetric.Reader
	fail := func(err error) (*Provider, error) {
		for _, r := range readers {
			_ = r.Shutdown(context.Background())
		}
		return nil, err
	}

	if opts.OTLP.Enabled || (opts.OTLPFromEnv && otlpEnvSet()) {
		exp, err := newOTLPExporter(ctx, opts.OTLP)
		if err != nil {
			return fail(err)
		}
		readers = append(readers, sdkmetric.NewPeriodicReader(exp, intervalOpts...))
	}

	if opts.StatsD != nil {
		cfg := *opts.StatsD
		if cfg.Logger == nil {
			cfg.Logger = opts.Logger
		}
		exp, err := NewStatsDExporter(cfg)
		if err != nil {
			return fail(err)
		}
		p.statsd = exp
		readers = append(readers, sdkmetric.NewPeriodicReader(exp, intervalOpts...))
	}

	// Last: the exporter registers a collector that Shutdown does not
	// remove, so nothing may fail after it.
	if !opts.NoPrometheus {
		p.registry = opts.Registry
		if p.registry == nil {
			p.registry = prometheus.NewRegistry()
			if !opts.NoRuntimeMetrics {
				p.registry.MustRegister(collectors.NewGoCollector(),
					collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			}
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(p.registry), otelprom.WithoutScopeInfo())
		if err != nil {
			return fail(fmt.Errorf("metrics: prometheus exporter: %w", err))
		}
		readers = append(readers, exp)
		p.handler = promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		})
	}

	readers = append(readers, opts.Readers...)
	for _, r := range readers {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	p.mp = sdkmetric.NewMeterProvider(mpOpts...)
	if opts.SetGlobal {
		otel.SetMeterProvider(p.mp)
		logger := opts.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			// Export errors quote the collector's URL, which may carry a
			// token: through perfkit's redaction rules.
			logger.Warn("metrics: opentelemetry error", "err", redact.String(err.Error()))
		}))
	}
	return p, nil
}

// Meter returns a Meter of the underlying SDK provider.
func (p *Provider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return p.mp.Meter(name, opts...)
}

// SDK returns the underlying SDK provider.
func (p *Provider) SDK() *sdkmetric.MeterProvider { return p.mp }

// Registry returns the Prometheus registry the exporter writes to, nil with
// NoPrometheus.
func (p *Provider) Registry() *prometheus.Registry { return p.registry }

// Handler returns the Prometheus scrape handler (for /health/metrics).
func (p *Provider) Handler() http.Handler { return p.handler }

// StatsD returns the StatsD exporter, nil unless Options.StatsD was set.
func (p *Provider) StatsD() *StatsDExporter { return p.statsd }

// ForceFlush collects and pushes to every push exporter now, returning when
// they are done or ctx ends.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if err := p.mp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("metrics: flush: %w", err)
	}
	return nil
}

// Shutdown flushes and stops every reader and exporter, returning when they
// are done or ctx ends. It is idempotent: later calls wait for the first
// and return its result. Instruments created from p record nothing after.
func (p *Provider) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		if err := p.mp.Shutdown(ctx); err != nil {
			p.shutdownErr = fmt.Errorf("metrics: shutdown: %w", err)
		}
	})
	return p.shutdownErr
}

// newResource merges, each over the one before: the SDK's attributes,
// computed defaults, the standard environment variables, then opts.
func newResource(ctx context.Context, opts Options) (*resource.Resource, error) {
	name := "unknown_service:go"
	if exe, err := os.Executable(); err == nil {
		name = filepath.Base(exe)
	}
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	host, _ := os.Hostname()
	explicit := slices.Clone(opts.Attributes)
	for _, kv := range []attribute.KeyValue{
		attribute.String("service.name", opts.ServiceName),
		attribute.String("service.version", opts.ServiceVersion),
		attribute.String("service.instance.id", opts.InstanceID),
	} {
		if kv.Value.AsString() != "" {
			explicit = append(explicit, kv)
		}
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", name),
			attribute.String("service.version", version),
			attribute.String("service.instance.id", host+"-"+strconv.Itoa(os.Getpid())),
		),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
		resource.WithAttributes(explicit...),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("metrics: resource: %w", err)
	}
	return res, nil
}

func newOTLPExporter(ctx context.Context, o OTLPOptions) (sdkmetric.Exporter, error) {
	proto := o.Protocol
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
	}
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		exp, err := otlpmetrichttp.New(ctx, otlpOptions(o,
			otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithHeaders, otlpmetrichttp.WithTimeout)...)
		if err != nil {
			return nil, fmt.Errorf("metrics: otlp http exporter: %w", redact.Error(err))
		}
		return exp, nil
	case "grpc":
		exp, err := otlpmetricgrpc.New(ctx, otlpOptions(o,
			otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithHeaders, otlpmetricgrpc.WithTimeout)...)
		if err != nil {
			return nil, fmt.Errorf("metrics: otlp grpc exporter: %w", redact.Error(err))
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("%w: OTLP protocol %q (want http/protobuf or grpc)", ErrInvalidConfig, proto)
	}
}

// otlpOptions turns the set fields of o into one exporter package's options;
// the rest come from the standard environment variables.
func otlpOptions[O any](o OTLPOptions, url func(string) O, headers func(map[string]string) O, timeout func(time.Duration) O) []O {
	var opts []O
	if o.EndpointURL != "" {
		opts = append(opts, url(o.EndpointURL))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, headers(o.Headers))
	}
	if o.Timeout > 0 {
		opts = append(opts, timeout(o.Timeout))
	}
	return opts
}

func otlpEnvSet() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

func checkBounds(b []float64) error {
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("boundary %d is %v", i, v)
		}
		if i > 0 && !(v > b[i-1]) {
			return fmt.Errorf("boundaries not strictly increasing at %d", i)
		}
	}
	return nil
}
