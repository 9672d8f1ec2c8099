package httpclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by [Transport] and [New] to zero-valued [Config] fields.
const (
	DefaultTimeout               = 30 * time.Second
	DefaultMaxConnsPerHost       = 50
	DefaultMaxIdleConns          = 200
	DefaultDialTimeout           = 2 * time.Second
	DefaultKeepAlive             = 30 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultExpectContinueTimeout = 1 * time.Second
)

// Config configures [New] and [Transport]. The zero value of every field
// means the documented default, so New(Config{}) returns a tuned, retrying,
// breaker-protected, instrumented client. Config is a plain value: start
// from a preset such as [OpenAI]() and change fields on it.
type Config struct {
	// Timeout bounds one request (all attempts, backoff waits and reading
	// the body; each redirect hop gets its own) through the request context.
	// Default 30 s; DisableTimeout removes it. A tighter caller deadline
	// wins.
	// http.Client.Timeout is left zero: for a RoundTripper other than
	// *http.Transport, net/http would enforce it with a goroutine, a timer
	// and about a dozen allocations per request.
	Timeout time.Duration
	// DisableTimeout removes the Timeout bound: only the caller's deadline
	// (and the transport's own timeouts) end a request.
	DisableTimeout bool

	// MaxConnsPerHost caps connections (dialing, active and idle) per host.
	// Default 50. Requests above the cap wait for a free connection.
	MaxConnsPerHost int
	// MaxIdleConnsPerHost is how many idle connections a host keeps.
	// Default MaxConnsPerHost: net/http closes every connection returned to a
	// full idle pool, so a pool smaller than the concurrency churns
	// connections after each burst (see bench/results/httpclient.md).
	MaxIdleConnsPerHost int
	// MaxIdleConns caps idle connections across all hosts. Default 200 (or
	// MaxIdleConnsPerHost if larger).
	MaxIdleConns int
	// DialTimeout bounds the TCP connect. Default 2 s (fail fast).
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive probe interval. Default 30 s.
	KeepAlive time.Duration
	// DisableTCPKeepAlive turns TCP keep-alive probes off (HTTP keep-alive,
	// the reuse of connections, stays on).
	DisableTCPKeepAlive bool
	// TLSHandshakeTimeout bounds the TLS handshake. Default 5 s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written. Default 30 s.
	ResponseHeaderTimeout time.Duration
	// DisableResponseHeaderTimeout removes the ResponseHeaderTimeout bound
	// (a streaming upstream that answers late; Timeout still applies).
	DisableResponseHeaderTimeout bool
	// IdleConnTimeout closes connections idle for this long. Default 90 s.
	IdleConnTimeout time.Duration
	// ExpectContinueTimeout is the wait for "100 Continue". Default 1 s.
	ExpectContinueTimeout time.Duration
	// DisableHTTP2 turns off HTTP/2 negotiation. By default HTTP/2 is used
	// where the server offers it over TLS (ForceAttemptHTTP2).
	DisableHTTP2 bool
	// TLSClientConfig is the TLS configuration. Default nil (system roots).
	TLSClientConfig *tls.Config
	// Proxy selects a proxy per request. Default http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)

	// Base replaces the tuned transport as the innermost RoundTripper; the
	// transport fields above are then ignored. Default: Transport(opts).
	Base http.RoundTripper
	// Tracing wraps the base transport with otelhttp: one client span per
	// attempt, named "METHOD route" (route from [WithRoute]), with trace
	// context injected by the global propagator. otelhttp's own metrics are
	// off; the metrics layer records them. Default false.
	Tracing bool
	// TracerProvider is used when Tracing is set.
	// Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// WrapBase wraps the base transport (after Tracing) before the
	// middleware is added, for any other instrumentation. Default nil.
	WrapBase func(http.RoundTripper) http.RoundTripper

	// Retry configures the retry layer; see [RetryConfig].
	Retry RetryConfig
	// DisableRetry removes the retry layer.
	DisableRetry bool
	// Breaker configures the per-host circuit breaker; see [BreakerConfig].
	Breaker BreakerConfig
	// DisableBreaker removes the breaker layer.
	DisableBreaker bool
	// Throttle configures client-side adaptive throttling per host (the
	// SRE book's: reject locally once a host refuses requests); see
	// [ThrottleConfig] and [ThrottleTransport].
	Throttle ThrottleConfig
	// DisableThrottle removes the throttle layer.
	DisableThrottle bool
	// Metrics configures metrics and request logging; see [MetricsConfig].
	Metrics MetricsConfig
	// DisableMetrics removes the metrics and logging layer.
	DisableMetrics bool

	// MeterProvider is used by every layer whose own options leave it nil.
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger is used by every layer whose own options leave it nil.
	// Default slog.Default().
	Logger *slog.Logger

	// CheckRedirect and Jar are copied to the http.Client. Default nil
	// (net/http behaviour: follow up to 10 redirects, no cookies).
	CheckRedirect func(req *http.Request, via []*http.Request) error
	Jar           http.CookieJar
}

// ErrInvalidConfig is wrapped by every configuration error that New and the
// layer constructors return.
var ErrInvalidConfig = errors.New("httpclient: invalid config")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

func (o Config) validate() error {
	switch {
	case o.MaxConnsPerHost < 0:
		return invalid("MaxConnsPerHost %d < 0", o.MaxConnsPerHost)
	case o.MaxIdleConnsPerHost < 0:
		return invalid("MaxIdleConnsPerHost %d < 0", o.MaxIdleConnsPerHost)
	case o.MaxIdleConns < 0:
		return invalid("MaxIdleConns %d < 0", o.MaxIdleConns)
	case o.Timeout < 0, o.ResponseHeaderTimeout < 0, o.KeepAlive < 0:
		return invalid("negative Timeout, ResponseHeaderTimeout or KeepAlive (use DisableTimeout, DisableResponseHeaderTimeout or DisableTCPKeepAlive)")
	case o.DialTimeout < 0, o.TLSHandshakeTimeout < 0, o.IdleConnTimeout < 0, o.ExpectContinueTimeout < 0:
		return invalid("negative dial, TLS handshake, idle or expect-continue timeout")
	}
	if err := o.Retry.validate(); err != nil {
		return err
	}
	if err := o.Throttle.validate(); err != nil {
		return err
	}
	return o.Breaker.validate()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Transport returns the tuned base transport described by opts (only the
// transport fields are read). Each call returns a new pool; share one client
// per upstream rather than creating transports per request. Invalid negative
// limits fall back to their defaults; use [New] to have them reported.
func Transport(opts Config) *http.Transport {
	maxConns := opts.MaxConnsPerHost
	if maxConns <= 0 {
		maxConns = DefaultMaxConnsPerHost
	}
	maxIdlePerHost := opts.MaxIdleConnsPerHost
	if maxIdlePerHost <= 0 {
		maxIdlePerHost = maxConns
	}
	maxIdle := opts.MaxIdleConns
	if maxIdle <= 0 {
		maxIdle = max(DefaultMaxIdleConns, maxIdlePerHost)
	}
	keepAlive := positiveOr(opts.KeepAlive, DefaultKeepAlive)
	if opts.DisableTCPKeepAlive {
		keepAlive = -1 // net.Dialer's "off"
	}
	respHeader := positiveOr(opts.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	if opts.DisableResponseHeaderTimeout {
		respHeader = 0
	}
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	dialer := &net.Dialer{
		Timeout:   positiveOr(opts.DialTimeout, DefaultDialTimeout),
		KeepAlive: keepAlive,
	}
	return &http.Transport{
		Proxy:                 proxy,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       opts.TLSClientConfig,
		TLSHandshakeTimeout:   positiveOr(opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		MaxIdleConns:          maxIdle,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       positiveOr(opts.IdleConnTimeout, DefaultIdleConnTimeout),
		ResponseHeaderTimeout: respHeader,
		ExpectContinueTimeout: positiveOr(opts.ExpectContinueTimeout, DefaultExpectContinueTimeout),
		ForceAttemptHTTP2:     !opts.DisableHTTP2,
	}
}

func positiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// New returns an *http.Client over the tuned [Transport] with the middleware
// stack, outermost first:
//
//	timeout → Retry → Metrics → Throttle → Breaker → [otelhttp] → base transport
//
// Retry is outermost so each attempt is measured, logged and judged by the
// breaker on its own: http.client.request.duration is recorded per attempt
// (as OpenTelemetry's semantic conventions count each resend as a request),
// a 503-then-200 shows up as one 503 and one 200, and the retries counter
// says how many attempts were resends. A request refused by an open breaker
// is recorded with error.type "circuit_open" and is not retried; one the
// throttle rejected, with error.type "throttled", is not retried either.
// Every attempt the retry layer makes passes the throttle and counts as a
// request there.
//
// The client is safe for concurrent use; share it. It starts no goroutines
// of its own beyond net/http's connection goroutines, which
// client.CloseIdleConnections releases (every layer forwards it).
func New(opts Config) (*http.Client, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	rt := opts.Base
	if rt == nil {
		rt = Transport(opts)
	}
	if opts.Tracing {
		rt = traced(rt, opts.TracerProvider)
	}
	if opts.WrapBase != nil {
		rt = opts.WrapBase(rt)
	}
	if !opts.DisableBreaker {
		bo := opts.Breaker
		bo.MeterProvider = orDefault(bo.MeterProvider, opts.MeterProvider)
		bo.Logger = orDefault(bo.Logger, opts.Logger)
		b, err := NewBreaker(rt, bo)
		if err != nil {
			return nil, err
		}
		rt = b
	}
	if !opts.DisableThrottle {
		to := opts.Throttle
		to.MeterProvider = orDefault(to.MeterProvider, opts.MeterProvider)
		t, err := NewThrottle(rt, to)
		if err != nil {
			return nil, err
		}
		rt = t
	}
	if !opts.DisableMetrics {
		mo := opts.Metrics
		mo.MeterProvider = orDefault(mo.MeterProvider, opts.MeterProvider)
		mo.Logger = orDefault(mo.Logger, opts.Logger)
		m, err := NewMetrics(rt, mo)
		if err != nil {
			return nil, err
		}
		rt = m
	}
	if !opts.DisableRetry {
		ro := opts.Retry
		if ro.Route == nil {
			ro.Route = opts.Metrics.Route
		}
		ro.MeterProvider = orDefault(ro.MeterProvider, opts.MeterProvider)
		ro.Logger = orDefault(ro.Logger, opts.Logger)
		r, err := NewRetry(rt, ro)
		if err != nil {
			return nil, err
		}
		rt = r
	}
	if timeout := orDefault(opts.Timeout, DefaultTimeout); !opts.DisableTimeout {
		rt = &timeoutTransport{next: rt, d: timeout}
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: opts.CheckRedirect,
		Jar:           opts.Jar,
	}, nil
}
