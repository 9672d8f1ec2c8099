package httpclient

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// DefaultMaxAttributeSets bounds the precomputed attribute sets each layer
// keeps (one per method, host, route, status and error type).
const DefaultMaxAttributeSets = 1024

// MetricsOptions configures [NewMetrics]. The zero value is usable.
type MetricsOptions struct {
	// MeterProvider creates the instruments. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger receives one line per attempt. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the level of the line for a response below 500.
	// Default slog.LevelDebug.
	LogLevel slog.Leveler
	// ErrorLogLevel is the level of the line for a transport error or a 5xx
	// response. Default slog.LevelWarn.
	ErrorLogLevel slog.Leveler
	// Route returns the route template of a request ("/v1/orders/{id}").
	// Default [RouteFromRequest] (the template set with [WithRoute]). It must
	// return a low-cardinality value, never the raw path.
	Route func(*http.Request) string
	// MaxAttributeSets bounds the cached attribute sets. Default 1024.
	MaxAttributeSets int
}

// MetricsTransport records http.client.request.duration (seconds, attributes
// http.request.method, server.address, server.port,
// http.response.status_code, http.route, error.type) and logs one slog line
// for every request that passes through it. The duration is the time to the
// response headers, as net/http's RoundTrip returns then. Log lines carry
// method, host, route, the URL with query values and user info redacted,
// status, duration and error; request and response headers are never logged,
// so Authorization, Cookie and the like cannot leak.
//
// A MetricsTransport is safe for concurrent use. With a cached attribute
// set and the log level disabled, it adds no allocations.
type MetricsTransport struct {
	next     http.RoundTripper
	duration metric.Float64Histogram
	logger   *slog.Logger
	level    slog.Leveler
	errLevel slog.Leveler
	route    func(*http.Request) string
	attrs    *attrCache
}

var _ http.RoundTripper = (*MetricsTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (m *MetricsTransport) CloseIdleConnections() { closeIdle(m.next) }

// NewMetrics wraps next with metrics and request logging. A nil next means
// http.DefaultTransport.
func NewMetrics(next http.RoundTripper, opts MetricsOptions) (*MetricsTransport, error) {
	if opts.MaxAttributeSets < 0 {
		return nil, invalid("MaxAttributeSets %d < 0", opts.MaxAttributeSets)
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	dur, err := mp.Meter(meterName).Float64Histogram("http.client.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP client requests (per attempt)."),
		metric.WithExplicitBucketBoundaries(durationBuckets()...))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create duration histogram: %w", err)
	}
	if opts.Route == nil {
		opts.Route = RouteFromRequest
	}
	return &MetricsTransport{
		next:     orDefault(next, http.DefaultTransport),
		duration: dur,
		logger:   orDefault(opts.Logger, slog.Default()),
		level:    orDefault[slog.Leveler](opts.LogLevel, slog.LevelDebug),
		errLevel: orDefault[slog.Leveler](opts.ErrorLogLevel, slog.LevelWarn),
		route:    opts.Route,
		attrs:    newAttrCache(orDefault(opts.MaxAttributeSets, DefaultMaxAttributeSets)),
	}, nil
}

// RoundTrip implements http.RoundTripper.
func (m *MetricsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := m.next.RoundTrip(req)
	elapsed := time.Since(start)

	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	errType := ""
	if err != nil {
		errType = errorType(err)
	}
	route := m.route(req)
	ctx := req.Context()
	m.duration.Record(ctx, elapsed.Seconds(), m.attrs.get(req, route, status, errType).rec...)

	level := m.level.Level()
	if err != nil || status >= 500 {
		level = m.errLevel.Level()
	}
	if m.logger.Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("host", req.URL.Host),
			slog.String("route", route),
			slog.String("url", RedactURL(req.URL)),
			slog.Int("attempt", AttemptFromContext(ctx)),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", redactError(err, req.URL)))
		}
		m.logger.LogAttrs(ctx, level, "httpclient: request", attrs...)
	}
	return resp, err
}

// RedactURL renders u for logs: user info is dropped, every query value is
// replaced by "REDACTED" (keys are kept) and the fragment is dropped.
func RedactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		c.RawQuery = redactQuery(c.RawQuery)
	}
	return c.String()
}

func redactQuery(raw string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = url.QueryEscape(k)
		} else {
			key = "INVALID"
		}
		b.WriteString(key)
		b.WriteString("=REDACTED")
	}
	return b.String()
}

// redactError returns err's text with the raw query and user info of u
// removed, in case a wrapped transport put the URL into its error.
func redactError(err error, u *url.URL) string {
	s := err.Error()
	if u.RawQuery != "" {
		s = strings.ReplaceAll(s, u.RawQuery, redactQuery(u.RawQuery))
	}
	if u.User != nil {
		s = strings.ReplaceAll(s, u.User.String(), "REDACTED")
	}
	return s
}
