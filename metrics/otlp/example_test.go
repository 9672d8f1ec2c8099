package otlp_test

import (
	"context"
	"log"
	"time"

	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/metrics/otlp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// An OTLP/HTTP exporter pushed every 30 s next to the Prometheus handler.
// Building it does not connect; the first export does, so this example
// needs a collector at collector:4318 and is not run by go test.
func ExampleNewExporter() {
	ctx := context.Background()
	exp, err := otlp.NewExporter(ctx, otlp.Config{
		Protocol:    "http/protobuf",
		EndpointURL: "http://collector:4318/v1/metrics",
		Headers:     map[string]string{"api-key": "secret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	p, err := metrics.Setup(ctx, metrics.Config{
		ServiceName:    "servio",
		Exporters:      []sdkmetric.Exporter{exp},
		ExportInterval: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx) // flushes the last export
}

// FromEnv adds OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT (or the
// metrics-specific variable) is set; nil otherwise, which Setup skips.
func ExampleFromEnv() {
	ctx := context.Background()
	exp, err := otlp.FromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p, err := metrics.Setup(ctx, metrics.Config{Exporters: []sdkmetric.Exporter{exp}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)
}
