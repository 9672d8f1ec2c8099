// Package metrics sets up OpenTelemetry metrics for a perfkit service and
// offers the cheap instrumentation the rest of a service needs.
//
//   - [Setup] builds a MeterProvider with a Prometheus exporter (its handler
//     serves /health/metrics), optional OTLP (HTTP or gRPC) and optional StatsD or
//     DogStatsD output, resource attributes, and views that give every
//     duration histogram (unit "s") bucket boundaries in seconds from the
//     OpenTelemetry semantic conventions instead of the SDK's millisecond
//     defaults.
//   - [StatsDExporter] is an sdk/metric Exporter for StatsD, DogStatsD and
//     Graphite users. It asks for delta temporality, so counters and
//     histogram buckets are sent as exact increments, while up-down counters
//     and gauges are sent as absolute gauges.
//   - [Track] and [TrackArg] wrap a function (the seed's @Track decorator) with a
//     duration histogram and an error counter; a call allocates nothing.
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
// Nothing else in perfkit imports this package: every perfkit package reports
// through otel.GetMeterProvider() by default, so a service that calls Setup with
// Options.SetGlobal gets all of their metrics in one place.
package metrics
