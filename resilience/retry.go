package resilience

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/servio/perfkit/internal/redact"
)

// Retry defaults: what a zero RetryConfig field means. httpclient's retry
// layer is built on this implementation and shares them.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 100 * time.Millisecond
	DefaultMaxDelay    = 10 * time.Second
)

// RetryConfig configures Retry. The zero value is usable: 3 attempts, full
// jitter from 100 ms up to 10 s, retrying every error but NotFailure ones
// and breaker rejections. Retry treats negative values and an unknown Jitter
// as the default (a decorator cannot return an error); NewPipeline rejects
// them. A RetryConfig is a plain value: copy a preset and change fields.
type RetryConfig struct {
	// Name labels metrics and logs. Default "retry".
	Name string
	// MaxAttempts is the number of attempts including the first. Default 3;
	// 1 disables retrying.
	MaxAttempts int
	// BaseDelay is the first backoff step. Default 100 ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff delays Retry chooses itself. Default 10 s.
	// It never shortens a delay the callee asked for (RetryAfterer): see
	// MaxRetryAfter.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest server-requested delay (RetryAfterer,
	// e.g. an HTTP Retry-After) Retry waits before the next attempt.
	// Default MaxDelay. A longer request ends retrying with a *RetryError
	// whose Reason is ErrRetryAfterTooLong and whose ServerDelay is the
	// requested delay: Retry never retries before the server allows. Raise
	// it to wait long delays when the caller's deadline allows (a delay
	// that would pass the deadline still gives up at once).
	MaxRetryAfter time.Duration
	// MaxElapsed stops retrying when the next attempt would start more than
	// this long after the first. Default 0: no limit (the context deadline
	// still applies).
	MaxElapsed time.Duration
	// Jitter picks the randomisation. Default JitterFull.
	Jitter Jitter
	// Backoff, when set, supplies the delay schedule instead of
	// BaseDelay/Jitter, e.g. func() backoff.BackOff { return
	// backoff.NewExponentialBackOff() }. It is called once per call, after
	// the first failure; backoff.Stop ends retrying. MaxDelay still caps it.
	Backoff func() backoff.BackOff
	// Retryable reports whether an error is worth another attempt.
	// Default DefaultRetryable. IsTransient retries network errors only;
	// RetryOn(targets...) retries the listed errors only.
	Retryable func(error) bool
	// Budget, when set, is a retry budget shared with other callers.
	Budget *Budget
	// AttemptTimeout, when positive, bounds each attempt with its own
	// context deadline.
	AttemptTimeout time.Duration
	// OnRetry, when set, is called before each retry with the number of the
	// attempt that failed (1-based), its error and the delay about to be
	// waited.
	OnRetry func(ctx context.Context, attempt int, err error, delay time.Duration)
	// Clock supplies time and timers. Default the system clock.
	Clock Clock
	// MeterProvider for metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger receives a Debug record per retry. Default slog.Default().
	Logger *slog.Logger
}

func (p RetryConfig) validate() error {
	if p.MaxAttempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 || p.MaxRetryAfter < 0 || p.MaxElapsed < 0 || p.AttemptTimeout < 0 {
		return invalid("retry config has a negative field")
	}
	if p.Jitter < JitterFull || p.Jitter > JitterNone {
		return invalid("unknown jitter")
	}
	return nil
}

type retrier struct {
	name           string
	maxAttempts    int
	base, maxDelay time.Duration
	maxRetryAfter  time.Duration
	maxElapsed     time.Duration
	jitter         Jitter
	backoff        func() backoff.BackOff
	retryable      func(error) bool
	budget         *Budget
	attemptTimeout time.Duration
	onRetry        func(context.Context, int, error, time.Duration)
	clock          Clock
	logger         *slog.Logger

	calls                            metric.Int64Counter
	retries                          metric.Int64Counter
	delay                            metric.Float64Histogram
	recoveredOpt, failOpt, gaveUpOpt []metric.AddOption
	retryOpt                         []metric.AddOption
	delayOpt                         []metric.RecordOption
}

func newRetrier(p RetryConfig) (*retrier, error) {
	r := &retrier{
		name: p.Name, maxAttempts: p.MaxAttempts, base: p.BaseDelay, maxDelay: p.MaxDelay, maxRetryAfter: p.MaxRetryAfter,
		maxElapsed: max(p.MaxElapsed, 0), jitter: p.Jitter, backoff: p.Backoff, retryable: p.Retryable,
		budget: p.Budget, attemptTimeout: max(p.AttemptTimeout, 0), onRetry: p.OnRetry,
		clock: clockOr(p.Clock), logger: p.Logger,
	}
	if r.name == "" {
		r.name = "retry"
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = DefaultMaxAttempts
	}
	if r.base <= 0 {
		r.base = DefaultBaseDelay
	}
	if r.maxDelay <= 0 {
		r.maxDelay = DefaultMaxDelay
	}
	if r.maxRetryAfter <= 0 {
		r.maxRetryAfter = r.maxDelay
	}
	if r.jitter < JitterFull || r.jitter > JitterNone {
		r.jitter = JitterFull
	}
	if r.retryable == nil {
		r.retryable = DefaultRetryable
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	b := newBuilder(p.MeterProvider)
	r.calls = b.counter("perfkit.resilience.retry.calls", "{call}", "Calls whose first attempt failed, by outcome: recovered, failed (not retryable) or gave_up.")
	r.retries = b.counter("perfkit.resilience.retries", "{retry}", "Retries (attempts after the first).")
	r.delay = b.seconds("perfkit.resilience.retry.delay", "Time waited before a retry.")
	pol := attribute.String(attrPolicy, r.name)
	r.recoveredOpt = addOpts(pol, attribute.String("outcome", "recovered"))
	r.failOpt = addOpts(pol, attribute.String("outcome", "failed"))
	r.gaveUpOpt = addOpts(pol, attribute.String("outcome", "gave_up"))
	r.retryOpt = addOpts(pol)
	// Start at 0, so Prometheus's rate() and increase() see the first one.
	r.retries.Add(context.Background(), 0, r.retryOpt...)
	for _, o := range [][]metric.AddOption{r.recoveredOpt, r.failOpt, r.gaveUpOpt} {
		r.calls.Add(context.Background(), 0, o...)
	}
	r.delayOpt = recordOpts(pol)
	return r, b.err()
}

// mustRetrier is for decorators, which cannot return an error: an invalid
// policy has already been normalised to defaults and a metrics error leaves
// no-op instruments, which is logged once.
func mustRetrier(p RetryConfig) *retrier {
	r, err := newRetrier(p)
	if err != nil {
		r.logger.Warn("resilience: retry metrics disabled", "policy", r.name, "error", err)
	}
	return r
}

// Retry returns fn wrapped so that failed calls are retried per p. The first attempt costs no allocation: backoff state and
// timers are created only after a failure. Retry stops at once on a
// Permanent error, a non-retryable error or the caller's context being done,
// never waits past the context deadline, and returns within a scheduler tick
// of cancellation. When it gives up on a retryable error it returns a
// *RetryError wrapping the last error and a zero T. fn must release what a
// failed attempt holds (close a response body) before returning its error.
// The returned func is safe for concurrent use.
func Retry[T any](p RetryConfig, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	r := mustRetrier(p)
	return func(ctx context.Context) (T, error) { return retryCall(ctx, r, fn) }
}

// Retry1 is Retry for functions that take an argument.
func Retry1[A, T any](p RetryConfig, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	r := mustRetrier(p)
	return func(ctx context.Context, a A) (T, error) {
		return retryCall(ctx, r, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

// Retrier is a RetryConfig built once, for callers that need the attempt
// number or cannot use the generic decorators (httpclient's RetryTransport
// is built on it). It is the same implementation as Retry, with the same
// rules, metrics and errors. It is safe for concurrent use.
type Retrier struct{ r *retrier }

// NewRetrier validates p and builds a Retrier. A negative field or an
// unknown Jitter is an error wrapping ErrInvalidConfig.
func NewRetrier(p RetryConfig) (*Retrier, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	r, err := newRetrier(p)
	if err != nil {
		return nil, err
	}
	return &Retrier{r: r}, nil
}

// Do calls fn with the 1-based attempt number until it succeeds or Retry's
// rules stop it, and returns what Retry would: nil, fn's error when it is
// not retried (a Permanent error comes back unwrapped), or a *RetryError.
// The first attempt costs no allocation.
func (r *Retrier) Do(ctx context.Context, fn func(ctx context.Context, attempt int) error) error {
	_, err := retryDo(ctx, r.r, func(ctx context.Context, attempt int) (struct{}, error) {
		return struct{}{}, fn(ctx, attempt)
	})
	return err
}

// retryCall is retryDo for callees that do not take the attempt number:
// the first attempt calls fn directly (the happy path pays no adapter),
// the rest go through the same loop, retrySlow.
func retryCall[T any](ctx context.Context, r *retrier, fn func(context.Context) (T, error)) (T, error) {
	if r.budget != nil {
		r.budget.deposit()
	}
	var start time.Time
	if r.maxElapsed > 0 {
		start = r.clock.Now()
	}
	withAttempt := func(ctx context.Context, _ int) (T, error) { return fn(ctx) }
	var v T
	var err error
	if r.attemptTimeout > 0 {
		v, err = callWithTimeout(ctx, r.attemptTimeout, 1, withAttempt)
	} else {
		v, err = fn(ctx)
	}
	if err == nil {
		return v, nil
	}
	return retrySlow(ctx, r, withAttempt, start, v, err)
}

func retryDo[T any](ctx context.Context, r *retrier, fn func(context.Context, int) (T, error)) (T, error) {
	if r.budget != nil {
		r.budget.deposit()
	}
	var start time.Time
	if r.maxElapsed > 0 {
		start = r.clock.Now()
	}
	var v T
	var err error
	if r.attemptTimeout > 0 {
		v, err = callWithTimeout(ctx, r.attemptTimeout, 1, fn)
	} else {
		v, err = fn(ctx, 1)
	}
	if err == nil {
		// First-attempt successes are not counted: with an OTel SDK a
		// counter Add costs several times the rest of this path.
		return v, nil
	}
	return retrySlow(ctx, r, fn, start, v, err)
}

func callWithTimeout[T any](ctx context.Context, d time.Duration, attempt int, fn func(context.Context, int) (T, error)) (T, error) {
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return fn(actx, attempt)
}

// retrySlow runs from the first failure on; keeping it out of retryDo keeps
// the happy path small.
func retrySlow[T any](ctx context.Context, r *retrier, fn func(context.Context, int) (T, error), start time.Time, v T, err error) (T, error) {
	var bo backoff.BackOff
	prev := r.base
	for attempt := 1; ; attempt++ {
		if cause, ok := permanentCause(err); ok {
			r.calls.Add(ctx, 1, r.failOpt...)
			return v, cause
		}
		if !r.retryable(err) {
			r.calls.Add(ctx, 1, r.failOpt...)
			return v, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return giveUp[T](ctx, r, attempt, err, cerr)
		}
		if attempt >= r.maxAttempts {
			return giveUp[T](ctx, r, attempt, err, ErrRetriesExhausted)
		}
		var d time.Duration
		if r.backoff != nil {
			if bo == nil {
				bo = r.backoff()
			}
			if d = bo.NextBackOff(); d == backoff.Stop {
				return giveUp[T](ctx, r, attempt, err, ErrRetriesExhausted)
			}
		} else {
			d = nextDelay(r.jitter, r.base, r.maxDelay, attempt, prev)
			prev = d
		}
		d = min(d, r.maxDelay)
		// A server-requested delay replaces the backoff and is never
		// shortened: when it cannot be waited, Retry gives up and says how
		// long the server asked for (ra).
		ra := serverDelay(err)
		if ra > 0 {
			d = ra
			if ra > r.maxRetryAfter {
				return giveUpAfter[T](ctx, r, attempt, err, ErrRetryAfterTooLong, ra)
			}
		}
		now := r.clock.Now()
		if r.maxElapsed > 0 && now.Add(d).Sub(start) > r.maxElapsed {
			return giveUpAfter[T](ctx, r, attempt, err, ErrRetriesExhausted, ra)
		}
		if dl, ok := ctx.Deadline(); ok && !now.Add(d).Before(dl) {
			return giveUpAfter[T](ctx, r, attempt, err, context.DeadlineExceeded, ra)
		}
		if r.budget != nil && !r.budget.withdraw() {
			return giveUp[T](ctx, r, attempt, err, ErrRetryBudget)
		}
		if r.onRetry != nil {
			r.onRetry(ctx, attempt, err, d)
		}
		r.retries.Add(ctx, 1, r.retryOpt...)
		r.delay.Record(ctx, d.Seconds(), r.delayOpt...)
		if r.logger.Enabled(ctx, slog.LevelDebug) {
			r.logger.DebugContext(ctx, "resilience: retrying", "policy", r.name, "attempt", attempt, "delay", d, "error", redact.String(err.Error()))
		}
		if serr := sleep(ctx, r.clock, d); serr != nil {
			return giveUp[T](ctx, r, attempt, err, serr)
		}
		if r.attemptTimeout > 0 {
			v, err = callWithTimeout(ctx, r.attemptTimeout, attempt+1, fn)
		} else {
			v, err = fn(ctx, attempt+1)
		}
		if err == nil {
			r.calls.Add(ctx, 1, r.recoveredOpt...)
			return v, nil
		}
	}
}

func giveUp[T any](ctx context.Context, r *retrier, attempts int, err, reason error) (T, error) {
	return giveUpAfter[T](ctx, r, attempts, err, reason, 0)
}

func giveUpAfter[T any](ctx context.Context, r *retrier, attempts int, err, reason error, serverDelay time.Duration) (T, error) {
	r.calls.Add(ctx, 1, r.gaveUpOpt...)
	var zero T
	return zero, &RetryError{Attempts: attempts, Err: err, Reason: reason, ServerDelay: serverDelay}
}

// serverDelay returns the delay an error asks for, or 0.
func serverDelay(err error) time.Duration {
	var ra RetryAfterer
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// sleep waits d on clk or until ctx is done.
func sleep(ctx context.Context, clk Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
