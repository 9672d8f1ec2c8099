// Package metrics sets up OpenTelemetry metrics for a perfkit service and
// offers the cheap instrumentation the rest of a service needs:
//
//	p, err := metrics.Setup(ctx, metrics.Config{ServiceName: "servio"})
//	if err != nil {
//		return err
//	}
//	defer p.Shutdown(ctx)
//
//	getMenu = metrics.Track1("menu.get", getMenu) // latency and errors of every call
//
//	mw, err := metrics.NewHTTPMiddleware(metrics.HTTPConfig{}) // latency by route
//	if err != nil {
//		return err
//	}
//	mux.Handle("GET /health/metrics", p.Handler()) // Prometheus scrape
//	return http.ListenAndServe(addr, mw.Wrap(mux))
//
// Setup makes p OpenTelemetry's global provider (unless
// Config.DisableGlobal), so every perfkit package, which reports through
// otel.GetMeterProvider() by default, records into it with no further
// wiring.
//
//   - [Setup] builds a MeterProvider with a Prometheus exporter (its handler
//     serves /health/metrics), optional push exporters (OTLP over HTTP or
//     gRPC from the metrics/otlp package) and optional StatsD or DogStatsD
//     output and resource attributes. Every duration histogram (unit "s")
//     that advises no boundaries gets buckets in seconds ([HTTPBuckets]:
//     100 µs to 10 s; [DBBuckets] for db.*) instead of the SDK's
//     millisecond defaults; an instrument's own advised boundaries are
//     kept. Go runtime metrics (go.memory.used, go.goroutine.count, ...)
//     come from OpenTelemetry's runtime instrumentation and, on Linux, the
//     semantic conventions' process metrics (process.cpu.time,
//     process.memory.usage, process.unix.file_descriptor.count,
//     process.uptime, ...) from /proc, so every exporter gets them
//     (Config.DisableRuntimeMetrics turns them off). Importing
//     metrics links no gRPC and no OTLP exporter.
//   - [StatsDExporter] is an sdk/metric Exporter for StatsD, DogStatsD and
//     Graphite users (see StatsD below).
//   - [Track] and [Track1] wrap a function so that every call records its
//     duration in perfkit.operation.duration (by operation name and outcome)
//     and counts its errors and panics in perfkit.operation.errors; a call
//     allocates nothing. [TrackWith] and [TrackWith1] record through a
//     [Tracker] of your own (another provider, spans).
//   - [HTTPMiddleware] records http.server.request.duration by method, route
//     pattern and status code, and http.server.active_requests, allocating
//     nothing per request; [ReportRoute] and [SetRoute] carry the route
//     through layers that replace the request.
//   - [Counter] and [ValueHistogram] bind business KPIs (orders, revenue) to
//     precomputed attribute sets.
//   - [Quantile], [ReadHistogram], [PromHistogram], [FetchPrometheus] and
//     [Histogram.Sub] read p50/p95/p99 back from an in-process reader or from
//     a Prometheus scrape, for tests and load reports.
//
// Nothing else in perfkit imports this package.
//
// # StatsD
//
// Config.StatsD (or [NewStatsDExporter] with a periodic reader) sends every
// instrument over UDP, every ExportInterval, in one of two dialects
// ([StatsDConfig].Format; servio's -statsd-format / STATSD_FORMAT):
//
//   - [DogStatsD] (default), for the Datadog agent: "name:v|type|#k:v,..."
//     with the attributes as tags. Counters are sent as increments ("|c",
//     none when nothing happened), up-down counters and gauges as gauges
//     ("|g"), histograms as DogStatsD histograms ("|h", the agent computes
//     avg, median, p95, max, count) or distributions ("|d",
//     Distributions), durations in milliseconds. Sample rates carry bucket
//     counts so that the agent's uint(1/rate) counts every observation
//     exactly once. The Etsy daemon would read "|h" and "|d" lines as
//     counters and turns tags into Graphite tags (name;k=v), so use
//     PlainStatsD with it.
//   - [PlainStatsD], for the Etsy statsd daemon (npm statsd), Telegraf's
//     statsd input, statsite and other Graphite pipelines: attributes are
//     folded into the name as path nodes ("servio.orders.region.eu:3|c";
//     characters outside [A-Za-z0-9_-] become "_", an empty value leaves
//     its attribute out), and histograms become timers ("name:12.5|ms"),
//     so statsd computes count, count_ps, mean, lower, upper, median and
//     upper_90 as it does for any timer. Distributions are refused in this
//     dialect (ErrInvalidConfig).
//
// A histogram reaches the exporter as bucket counts, min, max and sum, not
// as single observations. The timer and histogram values sent are chosen
// so that count, sum (so mean), min and max come out exact and
// percentiles within the bucket of the true one; [StatsDExporter] states
// the bounds, including PlainStatsD's MaxTimerLines thinning of busy
// series. The test suite checks this against the real statsd 0.9.0 daemon.
package metrics
