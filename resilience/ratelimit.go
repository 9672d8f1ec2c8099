package resilience

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"
)

// RateLimitConfig configures a RateLimiter: Limit calls per Per, in bursts
// of up to Burst. RateLimitConfig{} allows 100 calls per second and rejects
// beyond that.
type RateLimitConfig struct {
	// Name labels errors and metrics. Default "ratelimit".
	Name string
	// Limit is the number of calls allowed per Per. Default 100.
	Limit int
	// Per is the period of Limit. Default 1 s.
	Per time.Duration
	// Burst is the bucket size. Default Limit.
	Burst int
	// MaxWait is how long a call may wait for a token. Default 0: reject at
	// once with a *RateLimitError (wait-or-reject: set MaxWait to wait).
	// A call never waits past its context deadline.
	MaxWait time.Duration
	// Clock supplies time and timers. Default the system clock.
	Clock Clock
	// MeterProvider for metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// RateLimiter is a local token bucket (golang.org/x/time/rate) in front of
// a dependency. It is safe for concurrent use; an allowed call does not
// allocate. For limits shared across instances use perfkit's ratelimit
// package.
type RateLimiter struct {
	name    string
	lim     *rate.Limiter
	maxWait time.Duration
	clock   Clock

	rejections metric.Int64Counter
	wait       metric.Float64Histogram
	rejectOpt  []metric.AddOption
	waitOpt    []metric.RecordOption
}

// NewRateLimiter returns a rate limiter configured by c.
func NewRateLimiter(c RateLimitConfig) (*RateLimiter, error) {
	if c.Limit < 0 || c.Per < 0 || c.Burst < 0 || c.MaxWait < 0 {
		return nil, invalid("rate limit config has a negative field")
	}
	if c.Name == "" {
		c.Name = "ratelimit"
	}
	if c.Limit == 0 {
		c.Limit = 100
	}
	if c.Per == 0 {
		c.Per = time.Second
	}
	if c.Burst == 0 {
		c.Burst = c.Limit
	}
	l := &RateLimiter{
		name: c.Name, lim: rate.NewLimiter(rate.Limit(float64(c.Limit)/c.Per.Seconds()), c.Burst),
		maxWait: c.MaxWait, clock: clockOr(c.Clock),
	}
	bld := newBuilder(c.MeterProvider)
	l.rejections = bld.counter("perfkit.resilience.ratelimit.rejections", "{rejection}", "Calls rejected by a rate limiter.")
	l.wait = bld.seconds("perfkit.resilience.ratelimit.wait", "Time calls waited for a rate-limit token.")
	pol := attribute.String(attrPolicy, c.Name)
	l.rejectOpt = addOpts(pol)
	l.rejections.Add(context.Background(), 0, l.rejectOpt...) // starts at 0 for rate()
	l.waitOpt = recordOpts(pol)
	return l, bld.err()
}

// Do runs fn once a token is available; it is the non-generic form of
// Throttle. Without a token within MaxWait, or before ctx's deadline, it
// returns a *RateLimitError (errors.Is ErrRateLimited, RetryAfter set)
// without calling fn; if ctx is done while waiting it gives the token back
// and returns a *RateLimitError whose Err is ctx's error (errors.Is reaches
// it): a call that never got a token is not the dependency's failure.
func (l *RateLimiter) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := throttleDo(ctx, l, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Throttle returns fn limited by rl (see RateLimiter.Do). The returned func
// is safe for concurrent use.
func Throttle[T any](rl *RateLimiter, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return throttleDo(ctx, rl, fn) }
}

// Throttle1 is Throttle for functions that take an argument.
func Throttle1[A, T any](rl *RateLimiter, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		return throttleDo(ctx, rl, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func throttleDo[T any](ctx context.Context, l *RateLimiter, fn func(context.Context) (T, error)) (T, error) {
	if err := l.acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	return fn(ctx)
}

func (l *RateLimiter) acquire(ctx context.Context) error {
	now := l.clock.Now()
	if l.lim.AllowN(now, 1) {
		return nil
	}
	r := l.lim.ReserveN(now, 1)
	if !r.OK() {
		l.rejections.Add(ctx, 1, l.rejectOpt...)
		return &RateLimitError{Name: l.name}
	}
	d := r.DelayFrom(now)
	dl, hasDL := ctx.Deadline()
	if d > l.maxWait || (hasDL && !now.Add(d).Before(dl)) {
		r.CancelAt(now)
		l.rejections.Add(ctx, 1, l.rejectOpt...)
		return &RateLimitError{Name: l.name, Delay: d}
	}
	if err := sleep(ctx, l.clock, d); err != nil {
		r.CancelAt(l.clock.Now())
		l.rejections.Add(ctx, 1, l.rejectOpt...)
		return &RateLimitError{Name: l.name, Delay: d, Err: err}
	}
	l.wait.Record(ctx, d.Seconds(), l.waitOpt...)
	return nil
}
