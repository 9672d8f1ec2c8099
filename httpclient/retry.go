package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/servio/perfkit/resilience"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Retry defaults: resilience's, since the retry layer is a
// resilience.Retrier (three attempts in all, the first one included).
const (
	DefaultMaxAttempts = resilience.DefaultMaxAttempts
	DefaultBaseDelay   = resilience.DefaultBaseDelay
	DefaultMaxDelay    = resilience.DefaultMaxDelay
	DefaultDrainLimit  = 64 << 10
)

// DefaultRetryStatuses are the response codes retried by default.
func DefaultRetryStatuses() []int {
	return []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
}

// RetryConfig configures [NewRetry]. The zero value is usable: up to 3
// attempts (2 retries) with full-jitter exponential backoff from 100 ms
// capped at 10 s. The schedule, the Retry-After rule and the give-up rules
// are resilience.Retry's (the layer is a resilience.Retrier).
type RetryConfig struct {
	// MaxAttempts is the number of attempts in total, the first one
	// included (resilience's MaxAttempts). Default 3; 1 sends each request
	// once (or set Config.DisableRetry).
	MaxAttempts int
	// BaseDelay is the backoff ceiling of the first retry; the ceiling doubles
	// per retry and the wait is drawn per Jitter. Default 100 ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff waits. Default 10 s. It never shortens a
	// Retry-After: see MaxRetryAfter.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After (seconds or HTTP-date) the
	// layer waits. Default MaxDelay. A response asking for longer, or for a
	// wait past the request's deadline, is returned to the caller at once,
	// Retry-After header and body intact: the layer never resends before
	// the server allows.
	MaxRetryAfter time.Duration
	// Jitter picks the randomisation of the backoff. Default
	// resilience.JitterFull (uniform in [0, ceiling]).
	Jitter resilience.Jitter
	// RetryStatuses are the response codes that are retried.
	// Default 429, 502, 503, 504.
	RetryStatuses []int
	// ShouldRetry, if set, replaces the status and error classification
	// (the idempotency, body and context rules still apply). resp is nil
	// when err is not.
	ShouldRetry func(resp *http.Response, err error) bool
	// DrainLimit is how much of a discarded response body is read so its
	// connection can be reused; a longer body closes the connection.
	// Default 64 KiB.
	DrainLimit int64
	// OnRetry is called before each wait with the 1-based number of the
	// retry about to be made, the response or error that caused it, and the
	// wait. Read only the response's status and headers: its body is drained
	// and closed right after.
	OnRetry func(req *http.Request, retry int, resp *http.Response, err error, wait time.Duration)
	// Clock supplies waits and the time Retry-After dates are read against.
	// Default the system clock. Tests inject a fake.
	Clock resilience.Clock
	// Route returns the route template for the retries metric.
	// Default [RouteFromRequest].
	Route func(*http.Request) string
	// MeterProvider creates perfkit.httpclient.retries (and resilience's
	// perfkit.resilience.retries and perfkit.resilience.retry.*
	// instruments, policy "httpclient").
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs each retry at LogLevel. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the level of retry log lines. Default slog.LevelDebug.
	LogLevel slog.Leveler
}

func (o RetryConfig) validate() error {
	switch {
	case o.MaxAttempts < 0:
		return invalid("Retry.MaxAttempts %d < 0", o.MaxAttempts)
	case o.BaseDelay < 0, o.MaxDelay < 0, o.MaxRetryAfter < 0:
		return invalid("negative Retry.BaseDelay, Retry.MaxDelay or Retry.MaxRetryAfter")
	case o.DrainLimit < 0:
		return invalid("Retry.DrainLimit %d < 0", o.DrainLimit)
	case o.Jitter < resilience.JitterFull || o.Jitter > resilience.JitterNone:
		return invalid("unknown Retry.Jitter %d", o.Jitter)
	}
	for _, s := range o.RetryStatuses {
		if s < 100 || s > 999 {
			return invalid("Retry.RetryStatuses holds %d", s)
		}
	}
	return nil
}

// RetryTransport resends failed requests that are safe to resend:
//
//   - with no body, or a body that req.GetBody can recreate (http.NewRequest
//     sets it for bytes, strings and bytes.Reader bodies);
//   - any such request whose connection could not be made (a dial or
//     proxy-connect error: nothing was sent, so even a POST is safe);
//   - otherwise only methods GET, HEAD, OPTIONS, PUT, DELETE and TRACE, or
//     any method when the request carries an Idempotency-Key (or
//     X-Idempotency-Key) header, after a transport error other than the
//     caller's cancellation, an open breaker, a throttle rejection or a
//     certificate error, or
//     after a RetryStatuses response.
//
// The loop is resilience's (a resilience.Retrier): full-jitter exponential
// backoff, or exactly the response's Retry-After (seconds or HTTP-date),
// never less; a Retry-After longer than MaxRetryAfter, or a wait that would
// pass the context deadline, is not started and the last response is
// returned unchanged, body unread. Discarded responses are drained (up to
// DrainLimit) and closed so their connections return to the pool; idle
// connections are never closed. When retries run out the last response is
// returned unchanged; after transport errors the error is a
// *resilience.RetryError wrapping the last one. Cancelling the request
// context stops the wait at once.
//
// A RetryTransport is safe for concurrent use. A request that succeeds on
// its first attempt costs no allocations.
type RetryTransport struct {
	next        http.RoundTripper
	opts        RetryConfig
	retrier     *resilience.Retrier
	maxAttempts int
	clock       resilience.Clock
	statuses    [1000]bool
	retries     metric.Int64Counter
	attrs       *attrCache
	logger      *slog.Logger
	level       slog.Leveler
}

var _ http.RoundTripper = (*RetryTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped
// transport; http.Client.CloseIdleConnections calls it. The retry layer
// itself never does.
func (r *RetryTransport) CloseIdleConnections() { closeIdle(r.next) }

// NewRetry wraps next with retries. A nil next means http.DefaultTransport.
func NewRetry(next http.RoundTripper, opts RetryConfig) (*RetryTransport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	opts.DrainLimit = orDefault(opts.DrainLimit, DefaultDrainLimit)
	if opts.RetryStatuses == nil {
		opts.RetryStatuses = DefaultRetryStatuses()
	}
	if opts.Route == nil {
		opts.Route = RouteFromRequest
	}
	r := &RetryTransport{
		next:        orDefault(next, http.DefaultTransport),
		opts:        opts,
		maxAttempts: opts.MaxAttempts,
		clock:       orDefault(opts.Clock, resilience.SystemClock()),
		attrs:       newAttrCache(DefaultMaxAttributeSets),
		logger:      orDefault(opts.Logger, slog.Default()),
		level:       orDefault[slog.Leveler](opts.LogLevel, slog.LevelDebug),
	}
	mp := orDefault(opts.MeterProvider, otel.GetMeterProvider())
	retries, err := mp.Meter(meterName).Int64Counter("perfkit.httpclient.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Requests resent by the retry layer, by the status or error type that caused the resend."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create retries counter: %w", err)
	}
	r.retries = retries
	// The layer logs its own retry lines (with the URL redacted), so
	// resilience's are discarded.
	r.retrier, err = resilience.NewRetrier(resilience.RetryConfig{
		Name:          "httpclient",
		MaxAttempts:   opts.MaxAttempts,
		BaseDelay:     opts.BaseDelay,
		MaxDelay:      opts.MaxDelay,
		MaxRetryAfter: opts.MaxRetryAfter,
		Jitter:        opts.Jitter,
		Retryable:     func(err error) bool { _, ok := err.(*attemptFailure); return ok },
		OnRetry:       r.onRetry,
		Clock:         r.clock,
		MeterProvider: mp,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("httpclient: retry: %w", err)
	}
	for _, s := range opts.RetryStatuses {
		r.statuses[s] = true
	}
	return r, nil
}

// attemptFailure is a retryable outcome of one attempt, as the resilience
// retrier sees it: a RetryStatuses response (resp) or a transport error
// (err), with the Retry-After the response asked for.
type attemptFailure struct {
	req     *http.Request
	resp    *http.Response
	err     error
	after   time.Duration
	drained bool // resp was drained and closed before a wait
}

func (f *attemptFailure) Error() string {
	if f.err != nil {
		return f.err.Error()
	}
	return "httpclient: response status " + strconv.Itoa(f.resp.StatusCode)
}

func (f *attemptFailure) Unwrap() error { return f.err }

// RetryAfter implements resilience.RetryAfterer: the response's
// Retry-After, or 0 for the backoff schedule.
func (f *attemptFailure) RetryAfter() time.Duration { return f.after }

// RoundTrip implements http.RoundTripper.
func (r *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.maxAttempts == 1 || !bodyReplayable(req) {
		return r.next.RoundTrip(req)
	}
	idem := idempotent(req)
	var (
		resp  *http.Response
		rterr error
	)
	err := r.retrier.Do(req.Context(), func(ctx context.Context, attempt int) error {
		areq := req
		if attempt > 1 {
			var gerr error
			if areq, gerr = resend(req, attempt); gerr != nil {
				resp, rterr = nil, gerr
				return resilience.Permanent(gerr)
			}
		}
		resp, rterr = r.next.RoundTrip(areq)
		if !r.shouldRetry(ctx, idem, resp, rterr) {
			return nil
		}
		f := &attemptFailure{req: areq, resp: resp, err: rterr}
		if resp != nil {
			f.after, _ = parseRetryAfter(resp.Header.Get("Retry-After"), r.clock.Now())
		}
		return f
	})
	if err == nil {
		return resp, rterr
	}
	var re *resilience.RetryError
	if errors.As(err, &re) {
		if f, ok := re.Err.(*attemptFailure); ok && f.resp != nil && !f.drained {
			// Gave up without waiting (retries exhausted, a Retry-After too
			// long or past the deadline): the last response, unread.
			return f.resp, nil
		}
	}
	return nil, err
}

func (r *RetryTransport) record(req *http.Request, retry int, resp *http.Response, err error, wait time.Duration) {
	status, errType := 0, ""
	if resp != nil {
		status = resp.StatusCode
	} else {
		errType = errorType(err)
	}
	route := r.opts.Route(req)
	ctx := req.Context()
	r.retries.Add(ctx, 1, r.attrs.get(req, route, status, errType).add...)
	if r.logger.Enabled(ctx, r.level.Level()) {
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("host", req.URL.Host),
			slog.String("route", route),
			slog.Int("retry", retry),
			slog.Int("status", status),
			slog.Duration("wait", wait),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", redactError(err, req.URL)))
		}
		r.logger.LogAttrs(ctx, r.level.Level(), "httpclient: retrying request", attrs...)
	}
	if r.opts.OnRetry != nil {
		r.opts.OnRetry(req, retry, resp, err, wait)
	}
}

// resend returns the request for the given attempt: a fresh body and the
// attempt number in the context.
func resend(req *http.Request, attempt int) (*http.Request, error) {
	areq := req.WithContext(context.WithValue(req.Context(), attemptKey{}, attempt))
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		areq.Body = body
	}
	return areq, nil
}

// onRetry records a retry about to wait and releases the discarded
// response, so its connection returns to the pool during the wait.
func (r *RetryTransport) onRetry(_ context.Context, attempt int, err error, wait time.Duration) {
	f := err.(*attemptFailure)
	r.record(f.req, attempt, f.resp, f.err, wait)
	if f.resp != nil {
		drain(f.resp.Body, r.opts.DrainLimit)
		f.drained = true
	}
}

// bodyReplayable reports whether req's body can be sent again.
func bodyReplayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// idempotent reports whether req may be applied twice: an idempotent
// method or an idempotency key (net/http's own replay rule).
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	if !ok {
		_, ok = req.Header["X-Idempotency-Key"]
	}
	return ok
}

// notSent reports whether err says the request never left: the connection
// to the host (or the proxy) could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect")
}

func (r *RetryTransport) shouldRetry(ctx context.Context, idem bool, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil && (errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrThrottled)) {
		// Refused locally: resending at once would only re-draw the
		// throttle (or hit the open breaker) again.
		return false
	}
	if !idem && (err == nil || !notSent(err)) {
		// The server may have applied it: only a request that was never
		// sent is safe to resend.
		return false
	}
	if r.opts.ShouldRetry != nil {
		return r.opts.ShouldRetry(resp, err)
	}
	if err != nil {
		return retryableError(err)
	}
	return resp.StatusCode > 0 && resp.StatusCode < len(r.statuses) && r.statuses[resp.StatusCode]
}

// retryableError rejects errors a resend cannot fix: certificate problems
// and malformed requests.
func retryableError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		return false
	}
	msg := err.Error()
	return !strings.Contains(msg, "unsupported protocol scheme") && !strings.Contains(msg, "invalid header")
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3). Dates in the past mean no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return time.Duration(1<<63 - 1), true
			}
			return 0, false
		}
		if secs > uint64((1<<63-1)/time.Second) {
			return time.Duration(1<<63 - 1), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// drain reads up to limit bytes of a discarded body and closes it, so
// net/http can put the connection back in the pool.
func drain(body io.ReadCloser, limit int64) {
	if body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, body, limit)
	_ = body.Close()
}
