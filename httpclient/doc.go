// Package httpclient builds the *http.Client perfkit services use for every
// outbound call: a connection pool sized so 50 concurrent requests to one
// host reuse 50 keep-alive connections instead of dialing hundreds, plus
// retry, a per-host circuit breaker, per-endpoint OpenTelemetry metrics and
// slog request logging as http.RoundTripper layers.
//
// The one-line path returns a plain *http.Client that any SDK accepting one
// (OpenAI, Twilio, webhooks) can use:
//
//	client, err := httpclient.New(httpclient.OpenAI())
//
// New stacks the layers, outermost first, as
//
//	timeout → RetryTransport → MetricsTransport → BreakerTransport → [otelhttp] → *http.Transport
//
// so every attempt is measured and judged by the breaker, and a request the
// breaker refuses is not retried. Each layer can also be used alone on any
// RoundTripper through [NewRetry], [NewMetrics] and [NewBreaker].
//
// Label requests with a route template so metrics stay low-cardinality:
//
//	ctx = httpclient.WithRoute(ctx, "/v1/orders/{id}")
//
// Options.Tracing adds otelhttp under the breaker for one client span per
// attempt; Options.WrapBase takes any other RoundTripper wrapper.
//
// The package imports no other perfkit package; the breaker is
// github.com/sony/gobreaker/v2 by default and can be replaced through
// BreakerOptions.New with anything implementing [CircuitBreaker].
package httpclient
