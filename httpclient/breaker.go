package httpclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Breaker defaults.
const (
	DefaultConsecutiveFailures = 5
	DefaultMinRequests         = 10
	DefaultBreakerInterval     = 60 * time.Second
	DefaultOpenTimeout         = 30 * time.Second
	DefaultMaxHosts            = 1024
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
	// Err is the breaker's own error (gobreaker.ErrOpenState or
	// gobreaker.ErrTooManyRequests for the default breaker).
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

// CircuitBreaker guards one host. Allow either refuses the request with an
// error or returns done, which the breaker layer calls exactly once with the
// outcome: nil for success, context.Canceled when the caller gave up
// (implementations should not count it), any other error for a failure.
// *gobreaker.TwoStepCircuitBreaker[T] satisfies CircuitBreaker, and a
// resilience breaker can be adapted in a few lines.
type CircuitBreaker interface {
	Allow() (done func(err error), err error)
}

var _ CircuitBreaker = (*gobreaker.TwoStepCircuitBreaker[struct{}])(nil)

// BreakerOptions configures [NewBreaker]. The zero value is usable: trip a
// host after 5 consecutive failures, stay open 30 s, probe with one request.
type BreakerOptions struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Default 5.
	ConsecutiveFailures uint32
	// FailureRatio, if > 0, also trips the breaker when at least MinRequests
	// were made in the current Interval and this share of them failed.
	// Default 0 (off).
	FailureRatio float64
	// MinRequests is the minimum request count for FailureRatio. Default 10.
	MinRequests uint32
	// Interval is the closed-state window after which counts reset.
	// Default 60 s.
	Interval time.Duration
	// OpenTimeout is how long the breaker stays open before letting probes
	// through (half-open). Default 30 s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probes may run while half-open; that many
	// successes close the breaker. Default 1.
	HalfOpenRequests uint32
	// IsFailure classifies an attempt. Default: a transport error (but not
	// the caller's own cancellation) or a 5xx status is a failure; 4xx is a
	// success, since the host answered. A deadline that expires while the
	// upstream is slow counts as a failure.
	IsFailure func(resp *http.Response, err error) bool
	// MaxHosts bounds the number of per-host breakers kept. When full, an
	// arbitrary host's breaker is dropped to make room. Default 1024.
	MaxHosts int
	// New creates the breaker for a host, replacing the gobreaker default
	// (the fields above are then ignored except IsFailure and MaxHosts, and
	// the breaker metrics and OnStateChange are the custom breaker's job).
	New func(host string) CircuitBreaker
	// OnStateChange is called on every state change of a default breaker,
	// under the breaker's lock: keep it short.
	OnStateChange func(host string, from, to gobreaker.State)
	// MeterProvider creates http.client.breaker.state (gauge: 0 closed,
	// 1 half-open, 2 open) and http.client.breaker.transitions.
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs state changes (Warn when opening, Info otherwise).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o BreakerOptions) validate() error {
	switch {
	case o.FailureRatio < 0 || o.FailureRatio > 1:
		return invalid("Breaker.FailureRatio %v outside [0, 1]", o.FailureRatio)
	case o.Interval < 0, o.OpenTimeout < 0:
		return invalid("negative Breaker.Interval or Breaker.OpenTimeout")
	case o.MaxHosts < 0:
		return invalid("Breaker.MaxHosts %d < 0", o.MaxHosts)
	}
	return nil
}

// BreakerTransport keeps one circuit breaker per URL host and refuses
// requests to a host whose breaker is open with a [*BreakerOpenError],
// closing the request body as RoundTrippers must. It is safe for concurrent
// use. A request through a default (gobreaker) breaker costs one
// allocation, the breaker's done func.
type BreakerTransport struct {
	next      http.RoundTripper
	opts      BreakerOptions
	isFailure func(*http.Response, error) bool
	logger    *slog.Logger
	state     metric.Int64Gauge
	changes   metric.Int64Counter

	mu    sync.RWMutex
	hosts map[string]CircuitBreaker
}

var _ http.RoundTripper = (*BreakerTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (b *BreakerTransport) CloseIdleConnections() { closeIdle(b.next) }

// NewBreaker wraps next with a per-host circuit breaker. A nil next means
// http.DefaultTransport.
func NewBreaker(next http.RoundTripper, opts BreakerOptions) (*BreakerTransport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.ConsecutiveFailures = orDefault(opts.ConsecutiveFailures, DefaultConsecutiveFailures)
	opts.MinRequests = orDefault(opts.MinRequests, DefaultMinRequests)
	opts.Interval = orDefault(opts.Interval, DefaultBreakerInterval)
	opts.OpenTimeout = orDefault(opts.OpenTimeout, DefaultOpenTimeout)
	opts.HalfOpenRequests = orDefault(opts.HalfOpenRequests, 1)
	opts.MaxHosts = orDefault(opts.MaxHosts, DefaultMaxHosts)
	mp := orDefault(opts.MeterProvider, otel.GetMeterProvider())
	meter := mp.Meter(meterName)
	state, err := meter.Int64Gauge("http.client.breaker.state",
		metric.WithDescription("Circuit breaker state per host: 0 closed, 1 half-open, 2 open."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create breaker state gauge: %w", err)
	}
	changes, err := meter.Int64Counter("http.client.breaker.transitions",
		metric.WithDescription("Circuit breaker state changes per host and new state."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create breaker transitions counter: %w", err)
	}
	b := &BreakerTransport{
		next:      orDefault(next, http.DefaultTransport),
		opts:      opts,
		isFailure: opts.IsFailure,
		logger:    orDefault(opts.Logger, slog.Default()),
		state:     state,
		changes:   changes,
		hosts:     make(map[string]CircuitBreaker),
	}
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

// errServerStatus is reported to the breaker for a response IsFailure
// rejects; a sentinel so the report does not allocate.
var errServerStatus = errors.New("httpclient: failed response status")

// RoundTrip implements http.RoundTripper.
func (b *BreakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	done, err := b.breaker(host).Allow()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &BreakerOpenError{Host: host, Err: err}
	}
	resp, err := b.next.RoundTrip(req)
	switch {
	case err != nil && errors.Is(req.Context().Err(), context.Canceled):
		done(context.Canceled)
	case !b.isFailure(resp, err):
		done(nil)
	case err != nil:
		done(err)
	default:
		done(errServerStatus)
	}
	return resp, err
}

// State returns the state of host's default breaker and true, or false when
// host has no breaker yet or uses a custom one.
func (b *BreakerTransport) State(host string) (gobreaker.State, bool) {
	b.mu.RLock()
	cb := b.hosts[host]
	b.mu.RUnlock()
	s, ok := cb.(interface{ State() gobreaker.State })
	if !ok {
		return gobreaker.StateClosed, false
	}
	return s.State(), true
}

func (b *BreakerTransport) breaker(host string) CircuitBreaker {
	b.mu.RLock()
	cb, ok := b.hosts[host]
	b.mu.RUnlock()
	if ok {
		return cb
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cb, ok := b.hosts[host]; ok {
		return cb
	}
	if len(b.hosts) >= b.opts.MaxHosts {
		for h := range b.hosts {
			delete(b.hosts, h)
			break
		}
	}
	if b.opts.New != nil {
		cb = b.opts.New(host)
	} else {
		cb = b.newDefault(host)
	}
	b.hosts[host] = cb
	return cb
}

func (b *BreakerTransport) newDefault(host string) CircuitBreaker {
	o := b.opts
	b.state.Record(context.Background(), int64(gobreaker.StateClosed), metric.WithAttributes(hostAttrs(host)...))
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        host,
		MaxRequests: o.HalfOpenRequests,
		Interval:    o.Interval,
		Timeout:     o.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= o.ConsecutiveFailures {
				return true
			}
			return o.FailureRatio > 0 && c.Requests >= o.MinRequests &&
				float64(c.TotalFailures) >= o.FailureRatio*float64(c.Requests)
		},
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: b.onStateChange,
	})
}

func (b *BreakerTransport) onStateChange(host string, from, to gobreaker.State) {
	kv := hostAttrs(host)
	ctx := context.Background()
	b.state.Record(ctx, int64(to), metric.WithAttributes(kv...))
	b.changes.Add(ctx, 1, metric.WithAttributes(append(kv, attribute.String("state", to.String()))...))
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	b.logger.LogAttrs(ctx, level, "httpclient: circuit breaker state change",
		slog.String("host", host), slog.String("from", from.String()), slog.String("to", to.String()))
	if b.opts.OnStateChange != nil {
		b.opts.OnStateChange(host, from, to)
	}
}

func hostAttrs(host string) []attribute.KeyValue {
	addr, port := splitHostPort(host, "")
	kv := []attribute.KeyValue{attribute.String("server.address", addr)}
	if port > 0 {
		kv = append(kv, attribute.Int("server.port", port))
	}
	return kv
}
