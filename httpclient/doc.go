// Package httpclient builds the *http.Client perfkit services use for every
// outbound call:
//
//	client, err := httpclient.New(httpclient.OpenAI()) // a plain *http.Client: give it to any SDK
//	if err != nil {
//		return err
//	}
//	ctx = httpclient.WithRoute(ctx, "/v1/orders/{id}") // low-cardinality metric label
//	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/orders/"+id, nil)
//	resp, err := httpclient.CheckStatus(client.Do(req)) // 4xx/5xx → *StatusError
//	if err != nil {
//		return err // RetryAfter() and 4xx-is-not-a-failure for resilience
//	}
//	defer resp.Body.Close()
//
// The client has a connection pool sized so 50 concurrent requests to one
// host reuse 50 keep-alive connections instead of dialing hundreds, plus
// retry, client-side adaptive throttling and a circuit breaker per host,
// per-endpoint OpenTelemetry metrics and slog request logging as
// http.RoundTripper layers.
//
// New stacks the layers, outermost first, as
//
//	timeout → RetryTransport → MetricsTransport → ThrottleTransport → BreakerTransport → [otelhttp] → *http.Transport
//
// so every attempt is measured, passes the throttle and is judged by the
// breaker, and a request the throttle or the breaker refuses is not
// retried. Each layer can also be used alone on any RoundTripper through
// [NewRetry], [NewMetrics], [NewThrottle] and [NewBreaker].
//
// Throttling first, breaker second: the throttle ([ThrottleTransport], the
// Google SRE book's client-side adaptive throttling) is the soft answer to
// a host that refuses part of its traffic (429, 503, timeouts): it rejects
// locally with probability max(0, (requests − K·accepts)/(requests + 1)),
// so a host that can serve C requests is sent about K·C whatever the
// callers and their retries offer. The breaker is the hard answer to a
// host that fails outright. The throttle counts neither what the breaker
// refuses nor the caller's cancellations; the breaker never sees what the
// throttle rejects. A throttle rejection is a [*ThrottleError]
// (ErrThrottled, Refused() true, RetryAfter()); the retry layer does not
// resend it — every attempt it does make passes the throttle and counts
// as a request there, so retries add nothing to what reaches the host
// beyond the K·accepts bound. A resilience pipeline wrapped around the
// client would, by resilience.DefaultRetryable, retry it after its
// RetryAfter; give it a Retryable that excludes ErrThrottled to fail fast
// (examples/servio does).
//
// The throttle differs from failsafe-go's adaptivethrottler (v0.9.8) in
// four ways. Rejected requests count as requests, as in the SRE book:
// failsafe-go counts only executions that ran, so its rejection rate is a
// function of the failure ratio alone (1 − successes/(threshold·
// executions)) and the traffic it lets through grows with the offered load
// instead of settling near K times what the host accepts. There is no
// maximum rejection rate (failsafe-go caps it at 0.9, which would send a
// dead host a tenth of the offered load): the +1 in the denominator
// already lets a trickle of probes through. It keeps one window per host,
// bounded and evicted like the breakers, instead of one per policy (whose
// mutex every caller shares). And its clock and random source are
// injectable (failsafe-go's are the wall clock and math/rand), so tests
// drive the window and the draws.
//
// [WithRoute] labels requests with a route template so metrics stay
// low-cardinality; the raw path is never a label or logged.
// Config.Tracing adds otelhttp under the breaker for one client span per
// attempt; Config.WrapBase takes any other RoundTripper wrapper.
//
// The retry and breaker layers are built on perfkit's resilience package
// (its one import of another perfkit package): the retry
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
// The settings have resilience's names and meanings (RetryConfig.MaxAttempts
// counts the first call; BreakerConfig has resilience.BreakerConfig's
// fields); breaker metrics are resilience's (perfkit.resilience.breaker.*,
// labelled resilience.policy = BreakerConfig.Name+"/"+host), the retry
// layer adds perfkit.httpclient.retries ({retry}, by status or error type)
// and the throttle perfkit.httpclient.throttle.rejections ({rejection})
// and the gauge perfkit.httpclient.throttle.reject_probability (1), both
// by server.address, to the semantic-convention
// http.client.request.duration (s). A request
// whose connection was refused (a dial error: nothing was sent) is retried
// whatever its method.
//
// To wrap calls in a resilience pipeline instead of (or on top of) these
// layers, turn a failing status into an error with [CheckStatus]: its
// [*StatusError] carries the server's Retry-After and marks a 4xx other
// than 408 and 429 as resilience.NotFailure, so
// resilience.Wrap1(pipe, call) retries, waits and counts the right
// responses with no status-to-error code of your own. Set
// Config.DisableRetry then, so the two retry loops do not multiply.
package httpclient
