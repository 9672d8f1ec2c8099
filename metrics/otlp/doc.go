// Package otlp builds OTLP metrics exporters (HTTP or gRPC) for
// metrics.Setup:
//
//	exp, err := otlp.NewExporter(ctx, otlp.Config{
//		EndpointURL: "http://collector:4318/v1/metrics",
//		Headers:     map[string]string{"api-key": key},
//	})
//	if err != nil {
//		return err
//	}
//	p, err := metrics.Setup(ctx, metrics.Config{
//		ServiceName: "servio",
//		Exporters:   []sdkmetric.Exporter{exp}, // pushed every ExportInterval
//	})
//
// [FromEnv] does the same only when the standard OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT variable is set, reading endpoint,
// protocol, headers and timeout from the standard variables.
//
// The exporters live in a package of their own so that a service that only
// serves Prometheus or sends StatsD does not link gRPC and the OTLP
// exporters: importing metrics alone pulls neither.
package otlp
