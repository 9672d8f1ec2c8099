package resilience

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// State is a circuit breaker state (an alias of gobreaker's).
type State = gobreaker.State

// Counts are a breaker's counters in the current window (an alias of
// gobreaker's).
type Counts = gobreaker.Counts

// Breaker states.
const (
	StateClosed   = gobreaker.StateClosed
	StateHalfOpen = gobreaker.StateHalfOpen
	StateOpen     = gobreaker.StateOpen
)

// Breaker defaults: what a zero BreakerConfig field means. httpclient's
// per-host breakers are this implementation and share them.
const (
	DefaultConsecutiveFailures = 5
	DefaultMinRequests         = 10
	DefaultWindow              = 60 * time.Second
	DefaultOpenTimeout         = 60 * time.Second
)

// BreakerConfig configures a CircuitBreaker. Every zero field means the
// documented default, so BreakerConfig{} trips after 5 consecutive failures
// and probes again after 60 s.
type BreakerConfig struct {
	// Name labels errors, metrics, logs and OnStateChange. Default "breaker".
	Name string
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Default 5 when FailureRatio is 0, otherwise off.
	ConsecutiveFailures int
	// FailureRatio, in (0, 1], trips the breaker when failures/(failures +
	// successes) reaches it over the rolling Window once MinRequests calls
	// have been counted. Slow calls count as failures (see
	// SlowCallDuration). Default 0: off.
	FailureRatio float64
	// MinRequests is the number of counted calls in the window before
	// FailureRatio applies. Default 10.
	MinRequests int
	// Window is the rolling window over which closed-state counts are kept.
	// Default 60 s.
	Window time.Duration
	// BucketPeriod is the granularity of the rolling window (gobreaker's
	// BucketPeriod). Default Window/10.
	BucketPeriod time.Duration
	// SlowCallDuration, when positive, makes successful calls that take
	// longer than this count as failures (a slow-call ratio folded into
	// FailureRatio and ConsecutiveFailures).
	SlowCallDuration time.Duration
	// OpenTimeout is how long the breaker stays open before letting probes
	// through (half-open). Default 60 s.
	OpenTimeout time.Duration
	// HalfOpenProbes is the number of calls let through while half-open; as
	// many consecutive successes close the breaker, one failure reopens it.
	// Default 1.
	HalfOpenProbes int
	// IsFailure reports whether an error counts against the dependency;
	// errors for which it is false are not counted at all. It is only asked
	// about non-nil errors of calls whose context was not canceled.
	// Default DefaultIsFailure.
	IsFailure func(error) bool
	// OnStateChange, when set, is called on every transition, under the
	// breaker's lock: keep it short and do not call the breaker from it.
	OnStateChange func(name string, from, to State)
	// Clock times slow calls. Default the system clock. (Open and half-open
	// timing is gobreaker's and uses the system clock.)
	Clock Clock
	// MeterProvider for metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger receives a record per state change: Warn when the breaker
	// opens, Info otherwise. Default slog.Default().
	Logger *slog.Logger
}

// DefaultIsFailure is the default BreakerConfig.IsFailure: every error
// except context.Canceled (a caller giving up says nothing about the
// dependency), errors marked NotFailure, and rejections by perfkit's own
// bulkheads, rate limiters and breakers — and any error with a method
// Refused() bool that returns true: a call some other limiter turned away
// before it reached the dependency (ratelimit.LimitedError has it). Such an
// error is still retried by the default Retryable, after its RetryAfter.
func DefaultIsFailure(err error) bool {
	return !errors.Is(err, context.Canceled) && !IsNotFailure(err) && !isRefused(err) &&
		!errors.Is(err, ErrBulkheadFull) && !errors.Is(err, ErrRateLimited) &&
		!errors.Is(err, ErrOpen) && !errors.Is(err, ErrTooManyRequests)
}

func (c BreakerConfig) validate() error {
	if c.ConsecutiveFailures < 0 || c.MinRequests < 0 || c.HalfOpenProbes < 0 {
		return invalid("breaker ConsecutiveFailures, MinRequests and HalfOpenProbes must not be negative")
	}
	if uint64(c.ConsecutiveFailures) > math.MaxUint32 || uint64(c.MinRequests) > math.MaxUint32 || uint64(c.HalfOpenProbes) > math.MaxUint32 {
		return invalid("breaker ConsecutiveFailures, MinRequests and HalfOpenProbes must fit in 32 bits")
	}
	if !(c.FailureRatio >= 0 && c.FailureRatio <= 1) {
		return invalid("breaker FailureRatio must be in [0, 1]")
	}
	if c.Window < 0 || c.BucketPeriod < 0 || c.SlowCallDuration < 0 || c.OpenTimeout < 0 {
		return invalid("breaker config has a negative duration")
	}
	if c.BucketPeriod > 0 && c.Window > 0 && c.BucketPeriod > c.Window {
		return invalid("breaker BucketPeriod exceeds Window")
	}
	return nil
}

// CircuitBreaker stops calling a failing dependency for a while (gobreaker
// underneath) so callers fail fast instead of piling up. It is safe for
// concurrent use; the calling path does not allocate.
type CircuitBreaker struct {
	breakerCore
	cb *gobreaker.CircuitBreaker[struct{}]
}

// breakerCore is what CircuitBreaker and TwoStepBreaker share: the
// classification of outcomes, the preallocated rejections and the metrics.
type breakerCore struct {
	name      string
	isFailure func(error) bool
	slow      time.Duration
	clock     Clock
	open      *BreakerError
	tooMany   *BreakerError

	rejections  metric.Int64Counter
	transitions metric.Int64Counter
	pol         attribute.KeyValue
	rejectOpt   []metric.AddOption
	// stateReg reports the live state to perfkit.resilience.breaker.state from a
	// collection callback: an observable gauge, so a breaker that is
	// dropped (Breakers eviction) stops reporting instead of leaving its
	// last value behind forever.
	stateReg metric.Registration
}

// errExcluded and errFailed are what the breaker reports to gobreaker: the
// classification is perfkit's, gobreaker only counts.
var (
	errExcluded = errors.New("resilience: excluded")
	errFailed   = errors.New("resilience: failed")
)

// NewCircuitBreaker returns a closed breaker configured by c.
func NewCircuitBreaker(c BreakerConfig) (*CircuitBreaker, error) {
	b := &CircuitBreaker{}
	st, err := b.init(c)
	if err != nil {
		return nil, err
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	if err := b.observeState(c.MeterProvider, b.cb.State); err != nil {
		return nil, err
	}
	return b, nil
}

// observeState registers the state gauge's callback for this breaker.
func (k *breakerCore) observeState(mp metric.MeterProvider, state func() State) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scopeName)
	g, err := m.Int64ObservableGauge("perfkit.resilience.breaker.state", metric.WithUnit("{state}"),
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."))
	if err != nil {
		return err
	}
	opt := metric.WithAttributeSet(attribute.NewSet(k.pol))
	k.stateReg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, int64(state()), opt)
		return nil
	}, g)
	return err
}

// stopObserving ends the breaker's state reports (it was dropped).
func (k *breakerCore) stopObserving() {
	if k.stateReg != nil {
		_ = k.stateReg.Unregister()
	}
}

// init validates c, fills k and returns the gobreaker settings for it.
func (k *breakerCore) init(c BreakerConfig) (gobreaker.Settings, error) {
	if err := c.validate(); err != nil {
		return gobreaker.Settings{}, err
	}
	k.name, k.isFailure, k.slow, k.clock = c.Name, c.IsFailure, c.SlowCallDuration, clockOr(c.Clock)
	if k.name == "" {
		k.name = "breaker"
	}
	if k.isFailure == nil {
		k.isFailure = DefaultIsFailure
	}
	k.open, k.tooMany = newBreakerErrors(k.name)
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	window := c.Window
	if window == 0 {
		window = DefaultWindow
	}
	bucket := c.BucketPeriod
	if bucket == 0 {
		bucket = window / 10
	}
	// validate bounded the counts to [0, MaxUint32]: gobreaker counts in
	// uint32.
	consecutive := uint32(c.ConsecutiveFailures)
	if consecutive == 0 && c.FailureRatio == 0 {
		consecutive = DefaultConsecutiveFailures
	}
	minReq := uint32(c.MinRequests)
	if minReq == 0 {
		minReq = DefaultMinRequests
	}
	openTimeout := c.OpenTimeout
	if openTimeout == 0 {
		openTimeout = DefaultOpenTimeout
	}
	ratio := c.FailureRatio
	bld := newBuilder(c.MeterProvider)
	k.rejections = bld.counter("perfkit.resilience.breaker.rejections", "{rejection}", "Calls rejected by an open or saturated half-open breaker.")
	k.transitions = bld.counter("perfkit.resilience.breaker.transitions", "{transition}", "Circuit breaker state changes.")
	k.pol = attribute.String(attrPolicy, k.name)
	k.rejectOpt = addOpts(k.pol)
	k.rejections.Add(context.Background(), 0, k.rejectOpt...) // starts at 0 for rate()
	if err := bld.err(); err != nil {
		return gobreaker.Settings{}, err
	}
	onChange := c.OnStateChange
	return gobreaker.Settings{
		Name:         k.name,
		MaxRequests:  uint32(c.HalfOpenProbes),
		Interval:     window,
		BucketPeriod: bucket,
		Timeout:      openTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if consecutive > 0 && n.ConsecutiveFailures >= consecutive {
				return true
			}
			counted := n.TotalFailures + n.TotalSuccesses
			return ratio > 0 && counted >= minReq && float64(n.TotalFailures) >= ratio*float64(counted)
		},
		IsExcluded: func(err error) bool { return err == errExcluded },
		OnStateChange: func(name string, from, to gobreaker.State) {
			ctx := context.Background()
			k.transitions.Add(ctx, 1, metric.WithAttributes(k.pol,
				attribute.String("from", from.String()), attribute.String("to", to.String())))
			level := slog.LevelInfo
			if to == StateOpen {
				level = slog.LevelWarn
			}
			logger.Log(ctx, level, "resilience: circuit breaker state change", "breaker", name, "from", from.String(), "to", to.String())
			if onChange != nil {
				onChange(name, from, to)
			}
		},
	}, nil
}

// reject maps a gobreaker rejection to the preallocated perfkit error.
func (k *breakerCore) reject(ctx context.Context, gerr error) error {
	k.rejections.Add(ctx, 1, k.rejectOpt...)
	if gerr == gobreaker.ErrOpenState {
		return k.open
	}
	return k.tooMany
}

// outcome classifies a finished call for gobreaker.
func (k *breakerCore) outcome(err error, start time.Time) error {
	if err == nil {
		if k.slow > 0 && k.clock.Now().Sub(start) > k.slow {
			return errFailed
		}
		return nil
	}
	if !k.isFailure(err) {
		return errExcluded
	}
	return errFailed
}

// Name returns the breaker's name.
func (b *CircuitBreaker) Name() string { return b.name }

// State returns the current state.
func (b *CircuitBreaker) State() State { return b.cb.State() }

// Counts returns the counts of the current window or half-open period.
func (b *CircuitBreaker) Counts() Counts { return b.cb.Counts() }

// Do runs fn through the breaker; it is the non-generic form of Breaker for
// callers such as http.RoundTrippers. It returns a *BreakerError without
// calling fn when the breaker rejects the call.
func (b *CircuitBreaker) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := breakerDo(ctx, b, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Breaker returns fn guarded by cb: while cb is open calls fail at once
// with a *BreakerError (errors.Is ErrOpen or ErrTooManyRequests). Errors of
// fn come back unchanged. fn runs on the caller's goroutine with the
// caller's ctx; a call that fails after ctx was canceled is not counted. The
// returned func is safe for concurrent use.
func Breaker[T any](cb *CircuitBreaker, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return breakerDo(ctx, cb, fn) }
}

// Breaker1 is Breaker for functions that take an argument.
func Breaker1[A, T any](cb *CircuitBreaker, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		return breakerDo(ctx, cb, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func breakerDo[T any](ctx context.Context, b *CircuitBreaker, fn func(context.Context) (T, error)) (T, error) {
	return breakerRun(ctx, b, nil, fn)
}

// breakerRun is breakerDo for a Pipeline, whose adm says whether fn reached
// the dependency and when (nil: fn is the dependency).
func breakerRun[T any](ctx context.Context, b *CircuitBreaker, adm *admission, fn func(context.Context) (T, error)) (T, error) {
	var (
		v   T
		err error
		ran bool
	)
	_, gerr := b.cb.Execute(func() (struct{}, error) {
		ran = true
		var start time.Time
		if b.slow > 0 {
			start = b.clock.Now()
		}
		v, err = fn(ctx)
		if adm != nil {
			if !adm.reached {
				return struct{}{}, errExcluded
			}
			start = adm.at
		}
		return struct{}{}, b.classify(ctx, err, start)
	})
	if !ran {
		return v, b.reject(ctx, gerr)
	}
	return v, err
}

func (b *CircuitBreaker) classify(ctx context.Context, err error, start time.Time) error {
	if err != nil && ctx.Err() == context.Canceled {
		return errExcluded
	}
	return b.outcome(err, start)
}

// TwoStepBreaker is a circuit breaker for callers that cannot wrap the call
// in a function, such as an http.RoundTripper that learns the outcome from
// the response: Allow asks for permission and returns done, to be called
// once with the outcome. It counts and classifies exactly like
// CircuitBreaker (gobreaker's TwoStepCircuitBreaker underneath) but
// allocates the done func on every allowed call; prefer CircuitBreaker where
// the call can be wrapped. It is safe for concurrent use.
type TwoStepBreaker struct {
	breakerCore
	ts *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// NewTwoStepBreaker returns a closed two-step breaker configured by c.
func NewTwoStepBreaker(c BreakerConfig) (*TwoStepBreaker, error) {
	b := &TwoStepBreaker{}
	st, err := b.init(c)
	if err != nil {
		return nil, err
	}
	b.ts = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	if err := b.observeState(c.MeterProvider, b.ts.State); err != nil {
		return nil, err
	}
	return b, nil
}

// Allow returns a *BreakerError when the breaker refuses the call.
// Otherwise it returns done, which must be called exactly once with the
// call's error (nil for success); errors for which IsFailure is false, such
// as context.Canceled, are not counted.
func (b *TwoStepBreaker) Allow() (done func(err error), err error) {
	gdone, gerr := b.ts.Allow()
	if gerr != nil {
		return nil, b.reject(context.Background(), gerr)
	}
	var start time.Time
	if b.slow > 0 {
		start = b.clock.Now()
	}
	return func(err error) { gdone(b.outcome(err, start)) }, nil
}

// Name returns the breaker's name.
func (b *TwoStepBreaker) Name() string { return b.name }

// State returns the current state.
func (b *TwoStepBreaker) State() State { return b.ts.State() }

// Counts returns the counts of the current window or half-open period.
func (b *TwoStepBreaker) Counts() Counts { return b.ts.Counts() }

// isRefused reports whether err (or an error it wraps) says, through a
// Refused() bool method, that the call was refused before it reached the
// dependency.
func isRefused(err error) bool {
	var r interface{ Refused() bool }
	return errors.As(err, &r) && r.Refused()
}
