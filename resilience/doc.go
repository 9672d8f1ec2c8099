// Package resilience makes calls to other services hard to knock over:
// retry with exponential backoff and jitter, circuit breaker
// (sony/gobreaker/v2), timeout, bulkhead, local rate limit
// (golang.org/x/time/rate) and fallback, as generic wrappers of
//
//	func(context.Context) (T, error)
//	func(context.Context, A) (T, error)
//
// that return a function of the same shape, so they compose by nesting and
// replace the seed service's @Retry and @Timeout decorators:
//
//	get := resilience.Retry(resilience.RetryPolicy{}, fetchMenu)
//	get = resilience.Timeout(2*time.Second, get)
//
// A Pipeline stacks them in one documented order (timeout ⊃ retry ⊃
// breaker ⊃ bulkhead ⊃ rate limit ⊃ call) and wraps either shape:
//
//	p, err := resilience.NewPipeline(resilience.OpenAI())
//	ask := resilience.Wrap1(p, client.Ask)
//
// Presets (OpenAI, Twilio, Webhook) are functions returning plain Policy
// values to adjust. Breakers keeps one breaker per key (host, tenant).
// TwoStepBreaker is the Allow/done form for callers that cannot wrap the
// call in a function. httpclient builds its retry layer on Retrier and its
// per-host breakers on Breakers, so both packages share one implementation
// and one set of defaults.
//
// Errors: policies return *RetryError, *TimeoutError, *BreakerError,
// *BulkheadError and *RateLimitError, which match the sentinels ErrTimeout
// (and context.DeadlineExceeded), ErrOpen / ErrTooManyRequests (and
// gobreaker's), ErrBulkheadFull and ErrRateLimited with errors.Is and wrap
// the callee's error. Permanent stops retrying; NotFailure keeps an error
// (a 4xx, say) out of breaker counts and retries. context.Canceled never
// counts as a breaker failure.
//
// The happy path is cheap: a call that succeeds at the first attempt
// through Retry, Breaker, Bulkhead, RateLimiter or a Pipeline of them
// allocates nothing and records no metric; backoff state and timers exist
// only after a failure. Nothing in the package starts a goroutine.
//
// Metrics go to OpenTelemetry through a MeterProvider field (default
// otel.GetMeterProvider()), labelled resilience.policy=<Name>, with
// durations in seconds:
//
//	resilience.retry.calls            calls whose first attempt failed, by outcome (recovered, failed, gave_up)
//	resilience.retry.retries          retries
//	resilience.retry.delay            backoff waited before a retry (histogram)
//	resilience.breaker.state          0 closed, 1 half-open, 2 open (gauge)
//	resilience.breaker.transitions    state changes, by from and to
//	resilience.breaker.rejections     calls refused by an open breaker
//	resilience.bulkhead.rejections    calls refused by a full bulkhead
//	resilience.bulkhead.wait          time queued for a slot (histogram)
//	resilience.ratelimit.rejections   calls refused by a rate limiter
//	resilience.ratelimit.wait         time waited for a token (histogram)
//	resilience.timeout.timeouts       pipeline calls that hit their timeout
//
// Breaker state changes are logged (Warn when opening, Info otherwise) and
// retries at Debug through a
// *slog.Logger field (default slog.Default()).
package resilience
