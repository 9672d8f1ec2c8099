// Package resilience makes calls to other services hard to knock over:
//
//	p, err := resilience.NewPipeline(resilience.OpenAI()) // timeout, retry, breaker, bulkhead, rate limit
//	if err != nil {
//		return err
//	}
//	ask := resilience.Wrap1(p, func(ctx context.Context, q string) (string, error) {
//		return llm.Ask(ctx, q) // a 4xx marked resilience.NotFailure is neither retried nor counted
//	})
//	answer, err := ask(ctx, "Which pizza is vegetarian?")
//
//	// or one policy at a time, nested:
//	get := resilience.Retry(resilience.RetryConfig{MaxAttempts: 3}, fetchMenu)
//	get = resilience.Timeout(2*time.Second, get)
//
// It offers retry with exponential backoff and jitter, circuit breaker
// (sony/gobreaker/v2), timeout, bulkhead, local rate limit
// (golang.org/x/time/rate) and fallback, as generic wrappers of
//
//	func(context.Context) (T, error)      // Retry, Timeout, Breaker, Isolate, Throttle, Adaptive, Fallback, FallbackValue, Wrap
//	func(context.Context, A) (T, error)   // Retry1, Timeout1, Breaker1, Isolate1, Throttle1, Adaptive1, Fallback1, FallbackValue1, Wrap1
//
// that return a function of the same shape, so they compose by nesting and
// can replace retry and timeout annotations of other languages.
//
// A Pipeline stacks them in one documented order (timeout ⊃ retry ⊃
// breaker ⊃ bulkhead ⊃ rate limit ⊃ adaptive limit ⊃ call) and wraps
// either shape. Presets
// (OpenAI, Twilio, Webhook) are functions returning plain PipelineConfig
// values to adjust. Breakers keeps one breaker per key (host, tenant).
// TwoStepBreaker is the Allow/done form for callers that cannot wrap the
// call in a function. httpclient builds its retry layer on Retrier and its
// per-host breakers on Breakers, so both packages share one implementation
// and one set of defaults; its StatusError turns a failing HTTP status into
// an error these wrappers understand (Retry-After, 4xx not a failure).
//
// AdaptiveLimiter protects a server (or a dependency) from overload: it
// caps the calls in flight with a limit that follows measured latency (a
// gradient controller after Netflix's Gradient2, whose update rule its doc
// spells out), so past capacity the excess is refused at once with an
// *OverloadError (errors.Is ErrOverloaded, a RetryAfter for a 503, no
// breaker counts it) instead of queueing until every caller times out.
// Each call has a Priority: PriorityLow may fill half the limit, Normal
// 75 %, High 90 %, and PriorityCritical (health probes, the metrics scrape)
// is always admitted, so under pressure the lowest go first:
//
//	lim, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveConfig{MaxQueue: 50, QueueTimeout: 20 * time.Millisecond})
//	permit, err := lim.Acquire(ctx, resilience.PriorityHigh) // err: *OverloadError
//	if err != nil {
//		return err
//	}
//	err = placeOrder(ctx)
//	permit.Release(err) // the latency feeds the limit
//
// Adaptive and Adaptive1 wrap a function, reading the priority from the
// context (WithPriority). A server whose handlers are CPU-bound also gives
// the limiter a delay to hold under a target (AdaptiveConfig.Delay): the
// Go run-queue delay (SchedulerDelay, gated on CPU use with
// ProcessCPUTime), or, behind a proxy that stamps each request
// (X-Request-Start), the whole queue since the stamp (QueueDelay,
// ParseRequestStart). On one busy P a request is read only when the
// runtime polls the network; with AdaptiveConfig.NetworkFirst a slot
// freed while calls wait passes on only after such a poll, so requests
// are read, and refused if the queue is full, between two handlers; a
// handler that runs long without blocking (a query to an embedded
// database) calls AdaptiveLimiter.YieldToNetwork between its phases to
// let them be read there too.
//
// Configuration: every zero field means the documented default; a
// constructor (NewPipeline, NewRetrier, NewCircuitBreaker, ...) returns an
// error wrapping ErrInvalidConfig for a negative count or duration.
//
// Errors: policies return *RetryError, *TimeoutError, *BreakerError,
// *BulkheadError, *RateLimitError and *OverloadError, which match the
// sentinels ErrTimeout (and context.DeadlineExceeded), ErrOpen /
// ErrTooManyRequests (and gobreaker's), ErrBulkheadFull, ErrRateLimited and
// ErrOverloaded with errors.Is and wrap
// the callee's error. Permanent stops retrying; NotFailure keeps an error
// (a 4xx, say) out of breaker counts and retries; an error with a
// RetryAfter() method (RetryAfterer) makes Retry wait exactly that long.
// context.Canceled never counts as a breaker failure.
//
// The happy path is cheap: a call that succeeds at the first attempt
// through Retry, Breaker, Bulkhead, RateLimiter or a Pipeline of them
// allocates nothing and records no metric; backoff state and timers exist
// only after a failure. Nothing in the package starts a goroutine.
//
// Metrics go to OpenTelemetry through a MeterProvider field (default
// otel.GetMeterProvider()), labelled resilience.policy=<Name>, with
// durations in seconds (Prometheus names in brackets):
//
//	perfkit.resilience.retry.calls            {call}        calls whose first attempt failed, by outcome (recovered, failed, gave_up)
//	perfkit.resilience.retries                {retry}       retries [perfkit_resilience_retries_total]
//	perfkit.resilience.retry.delay            s             backoff waited before a retry (histogram)
//	perfkit.resilience.breaker.state          {state}       0 closed, 1 half-open, 2 open (gauge) [perfkit_resilience_breaker_state]
//	perfkit.resilience.breaker.transitions    {transition}  state changes, by from and to
//	perfkit.resilience.breaker.rejections     {rejection}   calls refused by an open breaker
//	perfkit.resilience.bulkhead.rejections    {rejection}   calls refused by a full bulkhead
//	perfkit.resilience.bulkhead.wait          s             time queued for a slot (histogram)
//	perfkit.resilience.ratelimit.rejections   {rejection}   calls refused by a rate limiter
//	perfkit.resilience.ratelimit.wait         s             time waited for a token (histogram)
//	perfkit.resilience.timeouts               {timeout}     pipeline calls that hit their timeout
//	perfkit.resilience.adaptive.limit         {request}     current concurrency limit of an adaptive limiter (gauge)
//	perfkit.resilience.adaptive.inflight      {request}     calls in flight through it (gauge)
//	perfkit.resilience.adaptive.rejections    {rejection}   calls it refused, by resilience.priority (low, normal, high)
//	                                                        and resilience.reason (shed, late, full, queued)
//	perfkit.resilience.adaptive.overlimit     {request}     critical calls admitted over its limit
//	perfkit.resilience.adaptive.shed_level    {level}       shed level driven by its Delay signal, 0 to 3 (gauge)
//
// The counters but transitions start at 0 for their policy (and each retry
// outcome) when the policy is built, so Prometheus's rate() and increase()
// see the first rejection, timeout or retry.
//
// Breaker state changes are logged (Warn when opening, Info otherwise) and
// retries at Debug through a *slog.Logger field (default slog.Default()).
package resilience
