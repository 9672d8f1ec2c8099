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
// Config.Tracing adds otelhttp under the breaker for one client span per
// attempt; Config.WrapBase takes any other RoundTripper wrapper.
//
// The retry and breaker layers are built on perfkit's resilience package
// (the one import DESIGN.md allows between public packages): the retry
// loop is a resilience.Retrier and the per-host breakers are
// resilience.CircuitBreakers in a resilience.Breakers registry, so both
// packages share one implementation, one set of defaults (3 attempts, a
// 60 s open timeout, ...) and one set of rules:
//
//   - a Retry-After is never cut short: longer than MaxRetryAfter (default
//     MaxDelay) or past the deadline, the response comes back at once;
//   - a breaker counts only requests that reached the host: not the
//     caller's cancellation, not a deadline that ended while the request
//     waited for a pooled connection; its failure ratio is over finished
//     requests only;
//   - an open breaker is never evicted to make room for another host.
//
// The option names (MaxRetries, Interval, HalfOpenProbes) are still
// httpclient's; breaker metrics are resilience's (resilience.breaker.*,
// labelled resilience.policy = BreakerConfig.Name+"/"+host). A request
// whose connection was refused (a dial error: nothing was sent) is retried
// whatever its method.
package httpclient
