package resilience

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// PipelineConfig describes a Pipeline: which policies to apply and how. A nil
// pointer (or zero Timeout) leaves that policy out, so PipelineConfig{} is a
// pipeline that only calls through. The order is fixed and documented on
// Pipeline. Presets (OpenAI, Twilio, Webhook) return filled configs to copy
// and adjust.
type PipelineConfig struct {
	// Name labels metrics and errors; parts without their own Name are named
	// Name+".retry", Name+".breaker" and so on. Default "pipeline".
	Name string
	// Timeout bounds the whole call, retries included. 0: none.
	Timeout time.Duration
	// TimeoutMessage is carried by the *TimeoutError.
	TimeoutMessage string
	// Retry retries failed attempts.
	Retry *RetryConfig
	// Breaker guards each attempt with a circuit breaker built for this
	// pipeline.
	Breaker *BreakerConfig
	// CircuitBreaker, when set, is an existing breaker (from a Breakers
	// registry, or shared between pipelines) used instead of Breaker.
	CircuitBreaker *CircuitBreaker
	// Bulkhead caps concurrent attempts.
	Bulkhead *BulkheadConfig
	// RateLimit limits the rate of attempts.
	RateLimit *RateLimitConfig
	// Adaptive caps concurrent attempts with a limit that follows their
	// latency (see AdaptiveLimiter), at the priority PriorityFrom(ctx).
	Adaptive *AdaptiveConfig
	// Clock is used by parts whose own Clock is nil. Default system clock.
	Clock Clock
	// MeterProvider is used by parts whose own is nil.
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger is used by parts whose own is nil. Default slog.Default().
	Logger *slog.Logger
}

// Pipeline applies several policies to a call in one fixed order, outermost
// first:
//
//	timeout ⊃ retry ⊃ circuit breaker ⊃ bulkhead ⊃ rate limit ⊃ adaptive limit ⊃ call
//
// so the timeout bounds all attempts and backoff, every attempt is counted
// by the breaker, an open breaker rejects before taking a bulkhead slot,
// a call holds its slot while waiting for a rate-limit token, and the
// adaptive limiter measures the dependency's latency alone. The
// breaker judges only attempts that reached fn: an attempt refused by the
// bulkhead, the rate limiter or the adaptive limiter, or whose context
// ended while it waited for a slot or a token, is not counted at all (whatever IsFailure says), so
// local overload never opens the circuit; and the slow-call timer
// (SlowCallDuration) starts when fn is called, not before the queue and
// token waits. Breaker rejections are not retried;
// rate-limit rejections are retried after their RetryAfter, breaker
// rejections are not retried. A Pipeline holds the breaker, bulkhead and
// limiter state, so build it once and share it; it is safe for concurrent
// use. Wrap and Wrap1 make decorators of it, Do calls through it.
type Pipeline struct {
	name     string
	timeout  time.Duration
	msg      string
	retry    *retrier
	breaker  *CircuitBreaker
	bulkhead *Bulkhead
	limiter  *RateLimiter
	adaptive *AdaptiveLimiter

	timeouts   metric.Int64Counter
	timeoutOpt []metric.AddOption
}

// NewPipeline validates p and builds its parts. A negative or unknown
// setting is an error wrapping ErrInvalidConfig.
func NewPipeline(p PipelineConfig) (*Pipeline, error) {
	if p.Timeout < 0 {
		return nil, invalid("negative pipeline timeout")
	}
	if p.Name == "" {
		p.Name = "pipeline"
	}
	pl := &Pipeline{name: p.Name, timeout: p.Timeout, msg: p.TimeoutMessage}
	sub := func(own string, kind string) string {
		if own != "" {
			return own
		}
		return p.Name + "." + kind
	}
	// cmp.Or: a part's own Clock, MeterProvider and Logger win over the
	// pipeline's.
	var err error
	if p.Retry != nil {
		rp := *p.Retry
		if err = rp.validate(); err != nil {
			return nil, err
		}
		rp.Name = sub(rp.Name, "retry")
		rp.Clock, rp.MeterProvider, rp.Logger = cmp.Or(rp.Clock, p.Clock), cmp.Or(rp.MeterProvider, p.MeterProvider), cmp.Or(rp.Logger, p.Logger)
		if pl.retry, err = newRetrier(rp); err != nil {
			return nil, err
		}
	}
	if p.CircuitBreaker != nil {
		pl.breaker = p.CircuitBreaker
	} else if p.Breaker != nil {
		bc := *p.Breaker
		bc.Name = sub(bc.Name, "breaker")
		bc.Clock, bc.MeterProvider, bc.Logger = cmp.Or(bc.Clock, p.Clock), cmp.Or(bc.MeterProvider, p.MeterProvider), cmp.Or(bc.Logger, p.Logger)
		if pl.breaker, err = NewCircuitBreaker(bc); err != nil {
			return nil, err
		}
	}
	if p.Bulkhead != nil {
		bc := *p.Bulkhead
		bc.Name = sub(bc.Name, "bulkhead")
		bc.Clock, bc.MeterProvider = cmp.Or(bc.Clock, p.Clock), cmp.Or(bc.MeterProvider, p.MeterProvider)
		if pl.bulkhead, err = NewBulkhead(bc); err != nil {
			return nil, err
		}
	}
	if p.RateLimit != nil {
		rc := *p.RateLimit
		rc.Name = sub(rc.Name, "ratelimit")
		rc.Clock, rc.MeterProvider = cmp.Or(rc.Clock, p.Clock), cmp.Or(rc.MeterProvider, p.MeterProvider)
		if pl.limiter, err = NewRateLimiter(rc); err != nil {
			return nil, err
		}
	}
	if p.Adaptive != nil {
		ac := *p.Adaptive
		ac.Name = sub(ac.Name, "adaptive")
		ac.Clock, ac.MeterProvider = cmp.Or(ac.Clock, p.Clock), cmp.Or(ac.MeterProvider, p.MeterProvider)
		if pl.adaptive, err = NewAdaptiveLimiter(ac); err != nil {
			return nil, err
		}
	}
	bld := newBuilder(p.MeterProvider)
	pl.timeouts = bld.counter("perfkit.resilience.timeouts", "{timeout}", "Calls that failed after their pipeline timeout.")
	pl.timeoutOpt = addOpts(attribute.String(attrPolicy, p.Name))
	pl.timeouts.Add(context.Background(), 0, pl.timeoutOpt...) // starts at 0 for rate()
	return pl, bld.err()
}

// Breaker returns the pipeline's circuit breaker, or nil.
func (p *Pipeline) Breaker() *CircuitBreaker { return p.breaker }

// Bulkhead returns the pipeline's bulkhead, or nil.
func (p *Pipeline) Bulkhead() *Bulkhead { return p.bulkhead }

// RateLimiter returns the pipeline's rate limiter, or nil.
func (p *Pipeline) RateLimiter() *RateLimiter { return p.limiter }

// AdaptiveLimiter returns the pipeline's adaptive limiter, or nil.
func (p *Pipeline) AdaptiveLimiter() *AdaptiveLimiter { return p.adaptive }

// Do calls fn through p (see Pipeline for the order) without allocating
// when fn succeeds at once (a Timeout costs context.WithTimeout's four
// allocations). Errors wrap both the policy's own (*TimeoutError,
// *RetryError, *BreakerError, *BulkheadError, *RateLimitError,
// *OverloadError) and fn's, so
// errors.Is/As reach either. When ctx is done, backoff and queue waits end
// at once and no further attempt starts. When Retry gives up early because its next
// backoff would pass the timeout, the error is a *RetryError whose Reason is
// context.DeadlineExceeded rather than a *TimeoutError; errors.Is(err,
// context.DeadlineExceeded) holds either way. For a fallback, wrap the
// result: Fallback(Wrap(p, fn), fb).
func Do[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error)) (T, error) {
	if p.timeout <= 0 {
		return pipeRetry(ctx, p, fn)
	}
	v, err := timeoutDo(ctx, p.timeout, p.msg, func(ctx context.Context) (T, error) { return pipeRetry(ctx, p, fn) })
	if _, ok := err.(*TimeoutError); ok {
		p.timeouts.Add(ctx, 1, p.timeoutOpt...)
	}
	return v, err
}

// Wrap returns fn decorated with p.
func Wrap[T any](p *Pipeline, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return Do(ctx, p, fn) }
}

// Wrap1 returns fn, a function of one argument, decorated with p.
func Wrap1[A, T any](p *Pipeline, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		return Do(ctx, p, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func pipeRetry[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error)) (T, error) {
	if p.retry == nil {
		return pipeBreaker(ctx, p, fn)
	}
	return retryCall(ctx, p.retry, func(ctx context.Context) (T, error) { return pipeBreaker(ctx, p, fn) })
}

// admission records whether an attempt got past the bulkhead and the rate
// limiter to the dependency, and when: the breaker judges only such calls
// and times slow calls from that moment, so local overload (a queue wait,
// a deadline that ends in the queue, a missing token) can never open a
// circuit to a healthy dependency. It lives on the caller's stack.
type admission struct {
	reached bool
	at      time.Time
}

func pipeBreaker[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error)) (T, error) {
	if p.breaker == nil {
		return pipeGuard(ctx, p, nil, fn)
	}
	var adm admission
	return breakerRun(ctx, p.breaker, &adm, func(ctx context.Context) (T, error) { return pipeGuard(ctx, p, &adm, fn) })
}

func pipeGuard[T any](ctx context.Context, p *Pipeline, adm *admission, fn func(context.Context) (T, error)) (T, error) {
	if p.bulkhead == nil {
		return pipeLimit(ctx, p, adm, fn)
	}
	return isolateDo(ctx, p.bulkhead, func(ctx context.Context) (T, error) { return pipeLimit(ctx, p, adm, fn) })
}

func pipeLimit[T any](ctx context.Context, p *Pipeline, adm *admission, fn func(context.Context) (T, error)) (T, error) {
	if p.limiter == nil {
		return pipeAdaptive(ctx, p, adm, fn)
	}
	return throttleDo(ctx, p.limiter, func(ctx context.Context) (T, error) { return pipeAdaptive(ctx, p, adm, fn) })
}

func pipeAdaptive[T any](ctx context.Context, p *Pipeline, adm *admission, fn func(context.Context) (T, error)) (T, error) {
	if p.adaptive == nil {
		return pipeCall(ctx, p, adm, fn)
	}
	return adaptiveDo(ctx, p.adaptive, func(ctx context.Context) (T, error) { return pipeCall(ctx, p, adm, fn) })
}

func pipeCall[T any](ctx context.Context, p *Pipeline, adm *admission, fn func(context.Context) (T, error)) (T, error) {
	if adm != nil {
		adm.reached = true
		if p.breaker.slow > 0 {
			adm.at = p.breaker.clock.Now()
		}
	}
	return fn(ctx)
}
