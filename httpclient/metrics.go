package httpclient

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/servio/perfkit/internal/redact"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// DefaultMaxAttributeSets bounds the precomputed attribute sets each layer
// keeps (one per method, host, route, status and error type).
const DefaultMaxAttributeSets = 1024

// MetricsConfig configures [NewMetrics]. The zero value is usable.
type MetricsConfig struct {
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
	// SecretNames are extra names of query parameters and fields whose
	// values are secret in error texts, on top of perfkit's deny-list
	// (password, token, key, sig, api-key, authorization, x-auth…): a name
	// containing one of them (case-insensitive) is masked. Default none.
	SecretNames []string
}

// MetricsTransport records http.client.request.duration (seconds, attributes
// http.request.method, server.address, server.port,
// http.response.status_code, http.route, error.type) and logs one slog line
// for every request that passes through it. The duration is the time to the
// response headers, as net/http's RoundTrip returns then. Log lines carry
// method, host, route, the url as scheme://host plus the route template
// (never the raw path, query or user info: for a webhook the path is the
// secret; without a route, scheme://host alone), status, duration and the
// error with the URL and every secret of perfkit's redaction rules masked;
// request and response headers are never logged, so Authorization, Cookie
// and the like cannot leak.
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
	rules    redact.Rules
}

var _ http.RoundTripper = (*MetricsTransport)(nil)

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (m *MetricsTransport) CloseIdleConnections() { closeIdle(m.next) }

// NewMetrics wraps next with metrics and request logging. A nil next means
// http.DefaultTransport.
func NewMetrics(next http.RoundTripper, opts MetricsConfig) (*MetricsTransport, error) {
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
		rules:    redact.New(opts.SecretNames...),
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
			slog.String("url", m.rules.Endpoint(req.URL, route)),
			slog.Int("attempt", AttemptFromContext(ctx)),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", redactErrorRoute(m.rules, err, req.URL, route)))
		}
		m.logger.LogAttrs(ctx, level, "httpclient: request", attrs...)
	}
	return resp, err
}

// RedactURL renders u for logs as scheme://host: user info, path, query
// and fragment are dropped (for a webhook the path is the secret). It is a
// thin wrapper of perfkit's one redaction rule set; the request log line
// adds the route template set with [WithRoute].
func RedactURL(u *url.URL) string { return redact.Endpoint(u, "") }

// redactError returns err's text with u's URL replaced by scheme://host and
// every secret of the default rules masked, in case a wrapped transport put
// the URL into its error.
func redactError(err error, u *url.URL) string {
	return redactErrorRoute(redact.Rules{}, err, u, "")
}

// redactErrorRoute is redactError under rules, rendering u as
// scheme://host+route.
func redactErrorRoute(rules redact.Rules, err error, u *url.URL, route string) string {
	return redactTextRoute(rules, err.Error(), u, route)
}

// redactTextRoute masks in s every form and piece of u (rendering the whole
// URL as scheme://host+route) and every secret of rules.
func redactTextRoute(rules redact.Rules, s string, u *url.URL, route string) string {
	ep := rules.Endpoint(u, route)
	noUser := *u
	noUser.User = nil
	noFrag := *u
	noFrag.Fragment, noFrag.RawFragment = "", ""
	bare := noFrag
	bare.User = nil
	for _, form := range [...]string{u.String(), noFrag.String(), noUser.String(), bare.String(), u.Redacted()} {
		s = strings.ReplaceAll(s, form, ep)
	}
	pieces := []string{u.RawQuery, u.EscapedPath(), u.Path, u.Fragment}
	if u.User != nil {
		pw, _ := u.User.Password()
		pieces = append(pieces, u.User.String(), u.User.Username(), pw)
	}
	for _, p := range pieces {
		if len(p) > 1 {
			s = strings.ReplaceAll(s, p, redact.Mask)
		}
	}
	return rules.String(s)
}
