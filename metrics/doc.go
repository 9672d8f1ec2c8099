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
//     come from OpenTelemetry's runtime instrumentation, so every exporter
//     gets them (Config.DisableRuntimeMetrics turns them off). Importing
//     metrics links no gRPC and no OTLP exporter.
//   - [StatsDExporter] is an sdk/metric Exporter for StatsD, DogStatsD and
//     Graphite users. It asks for delta temporality, so counters and
//     histogram buckets are sent as exact increments, while up-down counters
//     and gauges are sent as absolute gauges.
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
package metrics
