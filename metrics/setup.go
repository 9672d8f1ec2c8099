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
	otelruntime "go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// Config configures Setup. The zero value gives a Prometheus provider with
// seconds buckets on every duration histogram, installed as OpenTelemetry's
// global provider.
type Config struct {
	// ServiceName is the service.name resource attribute. Default: the
	// OTEL_SERVICE_NAME environment variable, else service.name in
	// OTEL_RESOURCE_ATTRIBUTES, else the executable's base name.
	ServiceName string
	// ServiceVersion is service.version. Default: service.version in
	// OTEL_RESOURCE_ATTRIBUTES, else from the build info: the main module's
	// version, else the VCS revision (12 hex digits, "-dirty" with local
	// changes), else "devel" (go test, go run outside a repository).
	//
	// On Prometheus the resource attributes (service.name, service.version,
	// service.instance.id, ...) are the labels of one target_info series,
	// not of every series: join them in where needed, e.g.
	//   rate(http_server_request_duration_seconds_count[5m])
	//     * on (job, instance) group_left (service_version) target_info
	ServiceVersion string
	// InstanceID is service.instance.id. Default: service.instance.id in
	// OTEL_RESOURCE_ATTRIBUTES, else "<hostname>-<pid>".
	InstanceID string
	// Attributes are added to the resource (deployment.environment.name, ...)
	// over those in OTEL_RESOURCE_ATTRIBUTES.
	Attributes []attribute.KeyValue

	// Registry receives the Prometheus collector. Default: a new registry of
	// its own (never prometheus.DefaultRegisterer). The client library's Go
	// and process collectors are not registered: the runtime and process
	// metrics below replace them, and would otherwise be served twice
	// (outside Linux, where the process metrics below cannot be read, the
	// process collector is registered in a registry Setup creates, unless
	// DisableRuntimeMetrics is set).
	Registry *prometheus.Registry
	// DisableRuntimeMetrics turns off the Go runtime metrics Setup starts
	// otherwise with OpenTelemetry's runtime instrumentation
	// (go.opentelemetry.io/contrib/instrumentation/runtime: go.memory.used,
	// go.memory.allocated, go.memory.allocations, go.memory.gc.goal,
	// go.goroutine.count, go.processor.limit, go.config.gogc), which every
	// exporter receives (Prometheus, OTLP, StatsD); on Prometheus they are
	// go_memory_used_bytes, go_goroutines, ... It also turns off the
	// process metrics of the OpenTelemetry semantic conventions, which Setup
	// reads from /proc on Linux for every exporter: process.cpu.time (by
	// cpu.mode), process.memory.usage (resident), process.memory.virtual,
	// process.unix.file_descriptor.count and process.uptime; on Prometheus
	// process_cpu_time_seconds_total, process_memory_usage_bytes,
	// process_memory_virtual_bytes, process_unix_file_descriptors and
	// process_uptime_seconds (they replace the client library's
	// process_resident_memory_bytes, process_open_fds, ...).
	DisableRuntimeMetrics bool
	// DisablePrometheus leaves the Prometheus exporter out; Handler then
	// serves 404.
	DisablePrometheus bool

	// Exporters are push exporters, each collected every ExportInterval by
	// a periodic reader of its own: OTLP from the metrics/otlp package
	// (otlp.NewExporter, otlp.FromEnv), or any other sdk/metric Exporter.
	// Nil entries are skipped, so otlp.FromEnv's result can be appended as
	// it is. Setup owns them: Provider.Shutdown shuts them down, and so does
	// Setup when it fails.
	Exporters []sdkmetric.Exporter

	// StatsD, when non-nil, adds a StatsD/DogStatsD exporter (see StatsDConfig).
	StatsD *StatsDConfig

	// ExportInterval is how often push exporters (Exporters, StatsD)
	// collect. Default: OTEL_METRIC_EXPORT_INTERVAL (milliseconds) when
	// set, else 10 s.
	ExportInterval time.Duration

	// HTTPBuckets are the boundaries of every duration histogram (unit "s")
	// whose name does not start with "db." and that advises none (an
	// instrument's metric.WithExplicitBucketBoundaries is kept: retry delays
	// up to 60 s stay up to 60 s). Default HTTPBuckets(). They replace the
	// SDK default (milliseconds); use Views to give one instrument others.
	// Instruments created through Provider.SDK() get the SDK default.
	HTTPBuckets []float64
	// DBBuckets are the boundaries of duration histograms named "db.*" that
	// advise none. Default DBBuckets().
	DBBuckets []float64
	// ExponentialHistograms makes every duration histogram a base-2
	// exponential histogram (160 buckets, scale ≤ 20) instead. The Prometheus
	// text format cannot carry these (only native-histogram protobuf can).
	ExponentialHistograms bool
	// Views are tried before the duration view; the first match wins.
	Views []sdkmetric.View
	// Readers are extra readers (a ManualReader in tests or a load report).
	Readers []sdkmetric.Reader

	// DisableGlobal leaves OpenTelemetry's globals alone. By default Setup
	// installs the provider with otel.SetMeterProvider, so that every
	// package defaulting to otel.GetMeterProvider() (all of perfkit's do)
	// reports into it, and routes OpenTelemetry's own errors (failed
	// exports) to Logger with otel.SetErrorHandler. With DisableGlobal,
	// pass the Provider as MeterProvider to each package instead.
	DisableGlobal bool
	// Logger receives export errors. Default slog.Default().
	Logger *slog.Logger
}

// Provider is a configured MeterProvider with its Prometheus handler. It is
// safe for concurrent use. Shutdown flushes push exporters and releases them.
type Provider struct {
	embedded.MeterProvider

	mp       *sdkmetric.MeterProvider
	registry *prometheus.Registry
	handler  http.Handler
	statsd   *StatsDExporter
	// httpB and dbB are the default seconds buckets of Meter's histograms.
	httpB, dbB []float64

	once        sync.Once
	shutdownErr error
}

var _ metric.MeterProvider = (*Provider)(nil)

// Setup builds a Provider from cfg and, unless cfg.DisableGlobal is set,
// makes it OpenTelemetry's global provider. It returns an error wrapping
// ErrInvalidConfig for a bad cfg, or an exporter's error. ctx bounds the
// resource detection and exporter construction only.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	// Readers built so far, with their exporters (cfg.Exporters first), are
	// shut down if Setup fails.
	var readers []sdkmetric.Reader
	fail := func(err error) (*Provider, error) {
		for _, r := range readers {
			_ = r.Shutdown(context.Background())
		}
		return nil, err
	}
	if cfg.ExportInterval < 0 {
		for _, exp := range cfg.Exporters {
			if exp != nil {
				_ = exp.Shutdown(context.Background())
			}
		}
		return nil, fmt.Errorf("%w: negative ExportInterval", ErrInvalidConfig)
	}
	var intervalOpts []sdkmetric.PeriodicReaderOption
	switch {
	case cfg.ExportInterval > 0:
		intervalOpts = append(intervalOpts, sdkmetric.WithInterval(cfg.ExportInterval))
	case os.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "":
		intervalOpts = append(intervalOpts, sdkmetric.WithInterval(10*time.Second))
	}
	for _, exp := range cfg.Exporters {
		if exp != nil {
			readers = append(readers, sdkmetric.NewPeriodicReader(exp, intervalOpts...))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	httpB, dbB := cfg.HTTPBuckets, cfg.DBBuckets
	if httpB == nil {
		httpB = HTTPBuckets()
	}
	if dbB == nil {
		dbB = DBBuckets()
	}
	if err := checkBounds(httpB); err != nil {
		return fail(fmt.Errorf("%w: HTTPBuckets: %w", ErrInvalidConfig, err))
	}
	if err := checkBounds(dbB); err != nil {
		return fail(fmt.Errorf("%w: DBBuckets: %w", ErrInvalidConfig, err))
	}

	res, err := newResource(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	p := &Provider{handler: http.NotFoundHandler(), httpB: slices.Clone(httpB), dbB: slices.Clone(dbB)}
	mpOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithView(durationView(cfg.Views, cfg.ExponentialHistograms)),
	}

	if cfg.StatsD != nil {
		sc := *cfg.StatsD
		if sc.Logger == nil {
			sc.Logger = cfg.Logger
		}
		exp, err := NewStatsDExporter(sc)
		if err != nil {
			return fail(err)
		}
		p.statsd = exp
		readers = append(readers, sdkmetric.NewPeriodicReader(exp, intervalOpts...))
	}

	// Last: the exporter registers a collector that Shutdown does not
	// remove, so nothing may fail after it.
	if !cfg.DisablePrometheus {
		p.registry = cfg.Registry
		if p.registry == nil {
			p.registry = prometheus.NewRegistry()
			if !cfg.DisableRuntimeMetrics && !processMetricsSupported {
				p.registry.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			}
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(p.registry), otelprom.WithoutScopeInfo())
		if err != nil {
			return fail(fmt.Errorf("metrics: prometheus exporter: %w", err))
		}
		readers = append(readers, exp)
		p.handler = promhttp.HandlerFor(promGatherer{p.registry}, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		})
	}

	readers = append(readers, cfg.Readers...)
	for _, r := range readers {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	p.mp = sdkmetric.NewMeterProvider(mpOpts...)
	if !cfg.DisableRuntimeMetrics {
		// Its instruments are observable and created once here; an error
		// (none in practice) costs the runtime metrics, not the provider.
		if err := otelruntime.Start(otelruntime.WithMeterProvider(p)); err != nil {
			cfg.Logger.Warn("metrics: Go runtime metrics not started", "err", err)
		}
		if processMetricsSupported {
			if err := startProcessMetrics(p); err != nil {
				cfg.Logger.Warn("metrics: process metrics not started", "err", err)
			}
		}
	}
	if !cfg.DisableGlobal {
		otel.SetMeterProvider(p)
		logger := cfg.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			// Export errors quote the collector's URL, which may carry a
			// token: through perfkit's redaction rules.
			logger.Warn("metrics: opentelemetry error", "err", redact.String(err.Error()))
		}))
	}
	return p, nil
}

// Meter returns a Meter of the underlying SDK provider whose duration
// histograms (unit "s") that advise no boundaries get Config.HTTPBuckets
// (Config.DBBuckets for names starting with "db.").
func (p *Provider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return secondsMeter{Meter: p.mp.Meter(name, opts...), httpB: p.httpB, dbB: p.dbB}
}

// SDK returns the underlying SDK provider. Its meters do not add Config's
// default seconds buckets (Meter does).
func (p *Provider) SDK() *sdkmetric.MeterProvider { return p.mp }

// Registry returns the Prometheus registry the exporter writes to, nil with
// DisablePrometheus. Serving it with a handler of your own skips Handler's
// renaming of "_count" gauges.
func (p *Provider) Registry() *prometheus.Registry { return p.registry }

// Handler returns the Prometheus scrape handler (for /health/metrics). It
// serves the registry with two changes that keep `promtool check metrics`
// clean: a gauge the exporter would name "<thing>_count" (the semantic
// conventions' db.client.connection.count, go.goroutine.count) is served
// as the plural "<thing>s" (db_client_connections, go_goroutines); a
// duration in ms, us or ns (go-redis's instrumentation) is served in
// seconds, renamed (_milliseconds → _seconds) and scaled. Other exporters
// keep the instruments' names and units.
func (p *Provider) Handler() http.Handler { return p.handler }

// StatsD returns the StatsD exporter, nil unless Config.StatsD was set.
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
// computed defaults, the standard environment variables, then cfg.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	name := "unknown_service:go"
	if exe, err := os.Executable(); err == nil {
		name = filepath.Base(exe)
	}
	bi, _ := debug.ReadBuildInfo()
	version := buildVersion(bi)
	host, _ := os.Hostname()
	explicit := slices.Clone(cfg.Attributes)
	for _, kv := range []attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", cfg.ServiceVersion),
		attribute.String("service.instance.id", cfg.InstanceID),
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

// buildVersion is the service.version the build info gives: the main
// module's version (a tag, or the pseudo-version go build stamps from the
// repository), else the VCS revision (12 characters, "-dirty" when the tree
// had changes), else "devel" for a build with neither (go test, go run
// outside a repository), else "unknown" without build info.
func buildVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		return rev
	}
	return "devel"
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
