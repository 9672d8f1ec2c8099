package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/servio/perfkit/internal/redact"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// ErrInvalidConfig is wrapped by every configuration error NewExporter and
// FromEnv return (an unknown protocol, an unparsable EndpointURL).
var ErrInvalidConfig = errors.New("otlp: invalid config")

// Config configures an OTLP metrics exporter. The zero value takes every
// setting from the standard OTEL_EXPORTER_OTLP_* environment variables, with
// the OpenTelemetry defaults where they are unset.
type Config struct {
	// Protocol is "http/protobuf" or "grpc". Default: the standard
	// OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL
	// variable, else "http/protobuf".
	Protocol string
	// EndpointURL is the collector's URL. For HTTP, a base URL
	// ("http://collector:4318", or one with a path prefix such as
	// "https://gw/otlp") gets "/v1/metrics" appended, as the standard
	// OTEL_EXPORTER_OTLP_ENDPOINT does; a URL whose path already ends in
	// "/v1/metrics" is used as it is. For gRPC: "http://collector:4317".
	// Default: the standard
	// OTEL_EXPORTER_OTLP_* variables, else https://localhost:4318/v1/metrics
	// (gRPC: localhost:4317).
	EndpointURL string
	// Headers are sent with every request (API keys). Default: the standard
	// OTEL_EXPORTER_OTLP_HEADERS variables.
	Headers map[string]string
	// Timeout bounds one export. Default: the standard
	// OTEL_EXPORTER_OTLP_TIMEOUT variables, else 10 s.
	Timeout time.Duration
}

// NewExporter returns an OTLP metrics exporter (HTTP or gRPC, per
// cfg.Protocol) for metrics.Config.Exporters, which collects it every
// ExportInterval and shuts it down with the provider. Building it does not
// connect: the first export does. It returns an error wrapping
// ErrInvalidConfig for an unknown protocol or an unparsable EndpointURL, or the exporter's error with any
// credential in it redacted. ctx bounds the construction only.
func NewExporter(ctx context.Context, cfg Config) (sdkmetric.Exporter, error) {
	proto := cfg.Protocol
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
	}
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		if cfg.EndpointURL != "" {
			u, err := url.Parse(cfg.EndpointURL)
			if err != nil {
				return nil, fmt.Errorf("%w: EndpointURL: %w", ErrInvalidConfig, redact.Error(err))
			}
			cfg.EndpointURL = metricsURL(u)
		}
		exp, err := otlpmetrichttp.New(ctx, options(cfg,
			otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithHeaders, otlpmetrichttp.WithTimeout)...)
		if err != nil {
			return nil, fmt.Errorf("otlp: http exporter: %w", redact.Error(err))
		}
		return exp, nil
	case "grpc":
		exp, err := otlpmetricgrpc.New(ctx, options(cfg,
			otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithHeaders, otlpmetricgrpc.WithTimeout)...)
		if err != nil {
			return nil, fmt.Errorf("otlp: grpc exporter: %w", redact.Error(err))
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("%w: protocol %q (want http/protobuf or grpc)", ErrInvalidConfig, proto)
	}
}

// FromEnv returns NewExporter(ctx, Config{}) when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
// environment variable is set, and nil, nil when neither is: append its
// result to metrics.Config.Exporters as it is (Setup skips nil entries).
func FromEnv(ctx context.Context) (sdkmetric.Exporter, error) {
	if !EnvSet() {
		return nil, nil
	}
	return NewExporter(ctx, Config{})
}

// EnvSet reports whether the standard OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT environment variable is set.
func EnvSet() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// metricsURL returns u with "/v1/metrics" appended to its path unless the
// path already ends in it (a trailing slash is dropped either way).
func metricsURL(u *url.URL) string {
	path := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(path, "/v1/metrics") {
		path += "/v1/metrics"
	}
	v := *u
	v.Path, v.RawPath = path, ""
	return v.String()
}

// options turns the set fields of cfg into one exporter package's options;
// the rest come from the standard environment variables.
func options[O any](cfg Config, url func(string) O, headers func(map[string]string) O, timeout func(time.Duration) O) []O {
	var opts []O
	if cfg.EndpointURL != "" {
		opts = append(opts, url(cfg.EndpointURL))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, headers(cfg.Headers))
	}
	if cfg.Timeout > 0 {
		opts = append(opts, timeout(cfg.Timeout))
	}
	return opts
}
