package httpclient

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// traced wraps rt with otelhttp so each attempt gets a client span named
// "METHOD route" (or "METHOD" without a route) and the global propagator
// injects trace headers. otelhttp's own metrics are switched off: the
// metrics layer already records http.client.request.duration.
func traced(rt http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	opts := []otelhttp.Option{
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(spanName),
	}
	if tp != nil {
		opts = append(opts, otelhttp.WithTracerProvider(tp))
	}
	return &tracedTransport{Transport: otelhttp.NewTransport(rt, opts...), base: rt}
}

// tracedTransport forwards CloseIdleConnections, which otelhttp.Transport
// does not.
type tracedTransport struct {
	*otelhttp.Transport
	base http.RoundTripper
}

func (t *tracedTransport) CloseIdleConnections() { closeIdle(t.base) }

func spanName(_ string, r *http.Request) string {
	if route := RouteFromRequest(r); route != "" {
		return r.Method + " " + route
	}
	return r.Method
}
