package httpclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/servio/perfkit/resilience"
	"go.opentelemetry.io/otel/metric"
)

// Breaker defaults. They are resilience's: the per-host breakers are
// resilience circuit breakers in a resilience.Breakers registry, so a
// BreakerConfig{} host breaker behaves exactly like a
// resilience.BreakerConfig{} one.
const (
	DefaultConsecutiveFailures = resilience.DefaultConsecutiveFailures
	DefaultMinRequests         = resilience.DefaultMinRequests
	DefaultWindow              = resilience.DefaultWindow
	DefaultOpenTimeout         = resilience.DefaultOpenTimeout
	DefaultMaxHosts            = resilience.DefaultMaxKeys
)

// ErrBreakerOpen is matched (errors.Is) by every [*BreakerOpenError].
var ErrBreakerOpen = errors.New("httpclient: circuit breaker open")

// BreakerOpenError is returned, without calling the upstream, for a request
// to a host whose breaker is open (or half-open with its probes in flight).
// http.Client wraps it in *url.Error; errors.Is(err, ErrBreakerOpen) and
// errors.As(err, &*BreakerOpenError) see through that.
type BreakerOpenError struct {
	// Host is the URL host (host[:port]) the breaker guards.
	Host string
	// Err is the breaker's own error, a *resilience.BreakerError (errors.Is
	// matches resilience.ErrOpen or resilience.ErrTooManyRequests, and
	// gobreaker's ErrOpenState or ErrTooManyRequests).
	Err error
}

// Error implements error.
func (e *BreakerOpenError) Error() string {
	return "httpclient: circuit breaker open for " + e.Host
}

// Is reports whether target is ErrBreakerOpen.
func (e *BreakerOpenError) Is(target error) bool { return target == ErrBreakerOpen }

// Unwrap returns the breaker's own error.
func (e *BreakerOpenError) Unwrap() error { return e.Err }

// BreakerConfig configures [NewBreaker]. Each host gets a
// resilience.CircuitBreaker built from these fields, which have
// resilience.BreakerConfig's names, types, semantics and defaults.
// The zero value is usable: trip a host after 5 consecutive failures, stay
// open 60 s, probe with one request.
type BreakerConfig struct {
	// Name prefixes the breakers' names: a host's breaker is Name+"/"+host
	// in perfkit.resilience.breaker.* metrics (attribute resilience.policy) and
	// logs. Default "httpclient".
	Name string
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Default 5 when FailureRatio is 0, otherwise off (set both to
	// have both).
	ConsecutiveFailures int
	// FailureRatio, if > 0, also trips the breaker when at least
	// MinRequests requests finished in the rolling Window and this share
	// of them failed. Requests still in flight and requests not counted
	// (the caller's cancellation, a wait for a pooled connection) are not
	// part of the ratio. Default 0 (off).
	FailureRatio float64
	// MinRequests is the minimum number of finished requests for
	// FailureRatio. Default 10.
	MinRequests int
	// Window is the rolling window over which closed-state counts are
	// kept. Default 60 s.
	Window time.Duration
	// OpenTimeout is how long the breaker stays open before letting probes
	// through (half-open). Default 60 s (resilience's).
	OpenTimeout time.Duration
	// HalfOpenProbes is how many probes may run while half-open; that many
	// successes close the breaker. Default 1.
	HalfOpenProbes int
	// IsFailure classifies an attempt that reached the host. Default: a
	// transport error or a 5xx status is a failure; 4xx is a success, since
	// the host answered. A deadline that expires while the upstream is slow
	// counts as a failure. Whatever IsFailure says, the caller's own
	// cancellation and a request whose context ended before it got a
	// connection (waiting for the pool, MaxConnsPerHost) are not counted.
	IsFailure func(resp *http.Response, err error) bool
	// MaxHosts bounds the number of per-host breakers kept. When full, a
	// closed host's breaker is dropped to make room; open and half-open
	// ones are never dropped (see resilience.Breakers). Default 1024.
	MaxHosts int
	// OnStateChange is called on every state change, under the breaker's
	// lock: keep it short.
	OnStateChange func(host string, from, to resilience.State)
	// MeterProvider creates the perfkit.resilience.breaker.* instruments.
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs state changes (Warn when opening, Info otherwise).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o BreakerConfig) validate() error {
	switch {
	case o.FailureRatio < 0 || o.FailureRatio > 1:
		return invalid("Breaker.FailureRatio %v outside [0, 1]", o.FailureRatio)
	case o.ConsecutiveFailures < 0, o.MinRequests < 0, o.HalfOpenProbes < 0:
		return invalid("negative Breaker.ConsecutiveFailures, Breaker.MinRequests or Breaker.HalfOpenProbes")
	case o.Window < 0, o.OpenTimeout < 0:
		return invalid("negative Breaker.Window or Breaker.OpenTimeout")
	case o.MaxHosts < 0:
		return invalid("Breaker.MaxHosts %d < 0", o.MaxHosts)
	}
	return nil
}

// BreakerTransport keeps one circuit breaker per URL host (a
// resilience.Breakers registry) and refuses requests to a host whose
// breaker is open with a [*BreakerOpenError], closing the request body as
// RoundTrippers must. It is safe for concurrent use. Each request costs
// four allocations: an httptrace hook that tells a wait for a pooled
// connection (not the host's fault) from a slow host.
type BreakerTransport struct {
	next      http.RoundTripper
	isFailure func(*http.Response, error) bool
	hosts     *resilience.Breakers
}

var _ http.RoundTripper = (*BreakerTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (b *BreakerTransport) CloseIdleConnections() { closeIdle(b.next) }

// errNotCounted is reported to the breaker for a request that never got a
// connection before its context ended; errServerStatus for a response
// IsFailure rejects. Sentinels, so the reports do not allocate.
var (
	errNotCounted   = errors.New("httpclient: request not counted")
	errServerStatus = errors.New("httpclient: failed response status")
)

// NewBreaker wraps next with a per-host circuit breaker. A nil next means
// http.DefaultTransport.
func NewBreaker(next http.RoundTripper, opts BreakerConfig) (*BreakerTransport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	name := orDefault(opts.Name, "httpclient")
	cfg := resilience.BreakerConfig{
		Name:                name,
		ConsecutiveFailures: opts.ConsecutiveFailures,
		FailureRatio:        opts.FailureRatio,
		MinRequests:         opts.MinRequests,
		Window:              opts.Window,
		OpenTimeout:         opts.OpenTimeout,
		HalfOpenProbes:      opts.HalfOpenProbes,
		IsFailure:           func(err error) bool { return err != errNotCounted },
		MeterProvider:       opts.MeterProvider,
		Logger:              opts.Logger,
	}
	if on := opts.OnStateChange; on != nil {
		prefix := name + "/"
		cfg.OnStateChange = func(n string, from, to resilience.State) { on(strings.TrimPrefix(n, prefix), from, to) }
	}
	hosts, err := resilience.NewBreakers(cfg, opts.MaxHosts)
	if err != nil {
		// resilience's message already says "invalid config".
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	b := &BreakerTransport{next: orDefault(next, http.DefaultTransport), isFailure: opts.IsFailure, hosts: hosts}
	if b.isFailure == nil {
		b.isFailure = defaultIsFailure
	}
	return b, nil
}

func defaultIsFailure(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode >= 500
}

// connWatch records whether a request got a connection.
type connWatch struct {
	got   atomic.Bool
	trace httptrace.ClientTrace
}

// RoundTrip implements http.RoundTripper.
func (b *BreakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	ctx := req.Context()
	w := &connWatch{}
	w.trace.GotConn = func(httptrace.GotConnInfo) { w.got.Store(true) }
	treq := req.WithContext(httptrace.WithClientTrace(ctx, &w.trace))
	var (
		resp   *http.Response
		rterr  error
		called bool
	)
	err := b.hosts.Get(host).Do(ctx, func(context.Context) error {
		called = true
		resp, rterr = b.next.RoundTrip(treq)
		switch {
		case rterr != nil && ctx.Err() != nil && !w.got.Load():
			// The context ended before the request had a connection: it
			// waited for the pool (or a dial still in progress); the host
			// did nothing wrong.
			return errNotCounted
		case !b.isFailure(resp, rterr):
			return nil
		case rterr != nil:
			return rterr
		default:
			return errServerStatus
		}
	})
	if !called {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &BreakerOpenError{Host: host, Err: err}
	}
	return resp, rterr
}

// State returns the state of host's breaker and true, or false when host
// has no breaker (yet, or any more).
func (b *BreakerTransport) State(host string) (resilience.State, bool) {
	cb, ok := b.hosts.Lookup(host)
	if !ok {
		return resilience.StateClosed, false
	}
	return cb.State(), true
}

// Len returns the number of per-host breakers held.
func (b *BreakerTransport) Len() int { return b.hosts.Len() }
