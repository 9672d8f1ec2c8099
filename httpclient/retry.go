package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Retry defaults.
const (
	DefaultMaxRetries = 3
	DefaultBaseDelay  = 100 * time.Millisecond
	DefaultMaxDelay   = 10 * time.Second
	DefaultDrainLimit = 64 << 10
)

// DefaultRetryStatuses are the response codes retried by default.
func DefaultRetryStatuses() []int {
	return []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
}

// RetryOptions configures [NewRetry]. The zero value is usable: up to 3
// retries with full-jitter exponential backoff from 100 ms capped at 10 s.
type RetryOptions struct {
	// MaxRetries is the number of resends after the first attempt.
	// Default 3; negative means none.
	MaxRetries int
	// BaseDelay is the backoff ceiling of the first retry; the ceiling doubles
	// per retry and the wait is drawn uniformly from [0, ceiling] (full
	// jitter). Default 100 ms.
	BaseDelay time.Duration
	// MaxDelay caps every wait, including one asked for by Retry-After.
	// Default 10 s.
	MaxDelay time.Duration
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
	// Sleep waits d or until ctx is done, returning ctx.Err() then.
	// Default: a timer. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used to read Retry-After dates.
	// Default time.Now.
	Now func() time.Time
	// Jitter returns a wait in [0, ceiling]. Default uniform random.
	Jitter func(ceiling time.Duration) time.Duration
	// Route returns the route template for the retries metric.
	// Default [RouteFromRequest].
	Route func(*http.Request) string
	// MeterProvider creates http.client.retries. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs each retry at LogLevel. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the level of retry log lines. Default slog.LevelDebug.
	LogLevel slog.Leveler
}

func (o RetryOptions) validate() error {
	switch {
	case o.BaseDelay < 0, o.MaxDelay < 0:
		return invalid("negative Retry.BaseDelay or Retry.MaxDelay")
	case o.DrainLimit < 0:
		return invalid("Retry.DrainLimit %d < 0", o.DrainLimit)
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
//   - methods GET, HEAD, OPTIONS, PUT, DELETE and TRACE, or any method when
//     the request carries an Idempotency-Key (or X-Idempotency-Key) header;
//   - with no body, or a body that req.GetBody can recreate (http.NewRequest
//     sets it for bytes, strings and bytes.Reader bodies);
//   - after a transport error other than the caller's cancellation, an open
//     breaker or a certificate error, or after a RetryStatuses response.
//
// Waits use full-jitter exponential backoff or the response's Retry-After
// (seconds or HTTP-date), capped at MaxDelay; a wait that would pass the
// context deadline is not started and the last response is returned.
// Discarded responses are drained (up to DrainLimit) and closed so their
// connections return to the pool; idle connections are never closed. When
// retries run out the last response is returned unchanged, body unread.
// Cancelling the request context stops the wait at once.
//
// A RetryTransport is safe for concurrent use. A request that succeeds on
// its first attempt costs no allocations; each resend costs two (the
// request copy and its attempt-numbered context).
type RetryTransport struct {
	next     http.RoundTripper
	opts     RetryOptions
	statuses [1000]bool
	retries  metric.Int64Counter
	attrs    *attrCache
	logger   *slog.Logger
	level    slog.Leveler
}

var _ http.RoundTripper = (*RetryTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped
// transport; http.Client.CloseIdleConnections calls it. The retry layer
// itself never does.
func (r *RetryTransport) CloseIdleConnections() { closeIdle(r.next) }

// NewRetry wraps next with retries. A nil next means http.DefaultTransport.
func NewRetry(next http.RoundTripper, opts RetryOptions) (*RetryTransport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	opts.BaseDelay = orDefault(opts.BaseDelay, DefaultBaseDelay)
	opts.MaxDelay = orDefault(opts.MaxDelay, DefaultMaxDelay)
	opts.DrainLimit = orDefault(opts.DrainLimit, DefaultDrainLimit)
	if opts.RetryStatuses == nil {
		opts.RetryStatuses = DefaultRetryStatuses()
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = fullJitter
	}
	if opts.Route == nil {
		opts.Route = RouteFromRequest
	}
	mp := orDefault(opts.MeterProvider, otel.GetMeterProvider())
	retries, err := mp.Meter(meterName).Int64Counter("http.client.retries",
		metric.WithDescription("Requests resent by the retry layer, by the status or error type that caused the resend."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create retries counter: %w", err)
	}
	r := &RetryTransport{
		next:    orDefault(next, http.DefaultTransport),
		opts:    opts,
		retries: retries,
		attrs:   newAttrCache(DefaultMaxAttributeSets),
		logger:  orDefault(opts.Logger, slog.Default()),
		level:   orDefault[slog.Leveler](opts.LogLevel, slog.LevelDebug),
	}
	for _, s := range opts.RetryStatuses {
		r.statuses[s] = true
	}
	return r, nil
}

// RoundTrip implements http.RoundTripper.
func (r *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.opts.MaxRetries < 0 || !replayable(req) {
		return r.next.RoundTrip(req)
	}
	ctx := req.Context()
	attemptReq := req
	for retry := 1; ; retry++ {
		resp, err := r.next.RoundTrip(attemptReq)
		if retry > r.opts.MaxRetries || !r.shouldRetry(ctx, resp, err) {
			return resp, err
		}
		wait := r.wait(retry, resp)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return resp, err
		}
		var body io.ReadCloser
		if req.Body != nil && req.Body != http.NoBody {
			b, gerr := req.GetBody()
			if gerr != nil {
				return resp, err
			}
			body = b
		}
		r.record(req, retry, resp, err, wait)
		if resp != nil {
			drain(resp.Body, r.opts.DrainLimit)
		}
		if serr := r.opts.Sleep(ctx, wait); serr != nil {
			if body != nil {
				body.Close()
			}
			return nil, serr
		}
		attemptReq = req.WithContext(context.WithValue(ctx, attemptKey{}, retry+1))
		if body != nil {
			attemptReq.Body = body
		}
	}
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

// replayable reports whether req may be sent again: an idempotent method or
// an idempotency key, and a body that can be recreated.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	// Same rule as net/http's own replay check.
	_, ok := req.Header["Idempotency-Key"]
	if !ok {
		_, ok = req.Header["X-Idempotency-Key"]
	}
	return ok
}

func (r *RetryTransport) shouldRetry(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil && errors.Is(err, ErrBreakerOpen) {
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

// wait returns the delay before the given 1-based retry.
func (r *RetryTransport) wait(retry int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), r.opts.Now()); ok {
			return min(d, r.opts.MaxDelay)
		}
	}
	ceiling := r.opts.MaxDelay
	if shift := retry - 1; shift < 63 && r.opts.BaseDelay <= r.opts.MaxDelay>>shift {
		ceiling = r.opts.BaseDelay << shift
	}
	return min(max(r.opts.Jitter(ceiling), 0), ceiling)
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

func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
