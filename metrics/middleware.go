package metrics

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Names of the HTTP server instruments (OpenTelemetry semantic conventions).
const (
	// HTTPServerDuration is the request duration histogram (unit "s").
	HTTPServerDuration = "http.server.request.duration"
	// HTTPServerActiveRequests is the up-down counter of requests in flight.
	HTTPServerActiveRequests = "http.server.active_requests"
	// OtherValue stands for an unknown method or a route beyond MaxRoutes.
	OtherValue = "_OTHER"
)

// HTTPConfig configures NewHTTPMiddleware. The zero value records into
// otel.GetMeterProvider() with at most 200 routes.
type HTTPConfig struct {
	// MeterProvider records the instruments. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// MaxRoutes bounds the distinct http.route values; later routes are
	// recorded as "_OTHER" so that series stay bounded. Default 200.
	MaxRoutes int
	// Buckets are the advised duration boundaries in seconds. Default HTTPBuckets().
	Buckets []float64
	// DisableActiveRequests leaves out http.server.active_requests, saving its two
	// counter updates per request. Default: recorded.
	DisableActiveRequests bool
}

// HTTPMiddleware records http.server.request.duration (seconds) with
// http.request.method (unknown methods as "_OTHER"), http.route (the path of
// the ServeMux pattern that matched, "/orders/{id}", never the raw path),
// http.response.status_code,
// url.scheme, network.protocol.version and, for 5xx, error.type; and
// http.server.active_requests by method and scheme. Attribute sets are
// built once per (method, route, status, scheme, protocol) and cached, and
// the status-recording writer is pooled, so a request allocates nothing.
// Safe for concurrent use.
type HTTPMiddleware struct {
	duration      metric.Float64Histogram
	active        metric.Int64UpDownCounter
	disableActive bool
	maxRoutes     int

	activeOpts [len(knownMethods) + 1][2][]metric.AddOption

	writers sync.Pool // of *responseWriter

	series atomic.Pointer[map[seriesKey][]metric.RecordOption] // copy on write
	mu     sync.Mutex                                          // serialises writers of series and routes
	routes map[string]struct{}
}

type seriesKey struct {
	method uint8
	tls    bool
	proto  uint8
	status int
	route  string
}

var knownMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

var protoNames = [...]string{"", "1.0", "1.1", "2", "3"}

func methodIndex(m string) uint8 {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodConnect:
		return 6
	case http.MethodOptions:
		return 7
	case http.MethodTrace:
		return 8
	}
	return uint8(len(knownMethods))
}

func methodName(i uint8) string {
	if int(i) < len(knownMethods) {
		return knownMethods[i]
	}
	return OtherValue
}

func protoIndex(r *http.Request) uint8 {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return 2
	case r.ProtoMajor == 2:
		return 3
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return 1
	case r.ProtoMajor == 3:
		return 4
	}
	return 0
}

// NewHTTPMiddleware creates the instruments. It returns an error wrapping
// ErrInvalidConfig for a negative MaxRoutes or bad buckets.
func NewHTTPMiddleware(cfg HTTPConfig) (*HTTPMiddleware, error) {
	if cfg.MaxRoutes < 0 {
		return nil, fmt.Errorf("%w: negative MaxRoutes", ErrInvalidConfig)
	}
	if cfg.MaxRoutes == 0 {
		cfg.MaxRoutes = 200
	}
	if cfg.Buckets == nil {
		cfg.Buckets = HTTPBuckets()
	}
	if err := checkBounds(cfg.Buckets); err != nil {
		return nil, fmt.Errorf("%w: HTTP Buckets: %w", ErrInvalidConfig, err)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	d, err := m.Float64Histogram(HTTPServerDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(cfg.Buckets...))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", HTTPServerDuration, err)
	}
	a, err := m.Int64UpDownCounter(HTTPServerActiveRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Number of active HTTP server requests."))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", HTTPServerActiveRequests, err)
	}
	h := &HTTPMiddleware{duration: d, active: a, disableActive: cfg.DisableActiveRequests,
		maxRoutes: cfg.MaxRoutes, routes: make(map[string]struct{})}
	for i := range h.activeOpts {
		for tls := range 2 {
			set := attribute.NewSet(
				attribute.String("http.request.method", methodName(uint8(i))),
				attribute.String("url.scheme", scheme(tls == 1)))
			h.activeOpts[i][tls] = []metric.AddOption{metric.WithAttributeSet(set)}
		}
	}
	h.writers.New = func() any { return new(responseWriter) }
	empty := map[seriesKey][]metric.RecordOption{}
	h.series.Store(&empty)
	return h, nil
}

func scheme(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}

// Wrap returns next instrumented. The route is the http.ServeMux pattern
// that matched: Wrap may sit directly around the mux (the mux sets Pattern
// on the request it was given, which Wrap reads after next returns) or
// around a handler registered in it. When layers between Wrap and the mux
// replace the *Request (r.WithContext, http.StripPrefix), put ReportRoute
// directly around the mux; other routers call SetRoute. A route reported
// that way wins over r.Pattern. Requests without a route (404s from the
// mux) carry no http.route attribute.
func (h *HTTPMiddleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		mi := methodIndex(r.Method)
		tls := r.TLS != nil
		ti := 0
		if tls {
			ti = 1
		}
		ctx := r.Context()
		if !h.disableActive {
			h.active.Add(ctx, 1, h.activeOpts[mi][ti]...)
		}
		rw := h.writers.Get().(*responseWriter)
		rw.ResponseWriter = w
		returned := false
		defer func() {
			if !h.disableActive {
				h.active.Add(ctx, -1, h.activeOpts[mi][ti]...)
			}
			route := rw.route // reported from inside: the most specific
			if route == "" {
				route = r.Pattern
			}
			status := rw.status
			switch {
			case status != 0:
			case returned:
				status = http.StatusOK // what net/http sends for an empty reply
			default:
				// The handler panicked before writing: the client gets no
				// response (or an outer recoverer's 500); count a failure.
				status = http.StatusInternalServerError
			}
			key := seriesKey{method: mi, tls: tls, proto: protoIndex(r), status: status, route: route}
			h.duration.Record(ctx, time.Since(start).Seconds(), h.opts(key)...)
			if returned {
				// The handler has returned, so it no longer uses rw (the
				// http.Handler contract): recycle it.
				*rw = responseWriter{}
				h.writers.Put(rw)
			}
		}()
		next.ServeHTTP(rw, r)
		returned = true
	})
}

// maxCachedKeys bounds the option cache: raw routes that map to "_OTHER"
// are cached under their own key only while it is below this size.
const maxCachedKeys = 10000

// opts returns the cached option slice for key, building it on first use.
// The cache is copy-on-write: reads take no lock.
func (h *HTTPMiddleware) opts(key seriesKey) []metric.RecordOption {
	if o, ok := (*h.series.Load())[key]; ok {
		return o
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := *h.series.Load()
	if o, ok := cur[key]; ok {
		return o
	}
	norm := key
	norm.route = routeTemplate(key.route)
	if norm.route != "" {
		if _, known := h.routes[norm.route]; !known {
			if len(h.routes) >= h.maxRoutes {
				norm.route = OtherValue
			} else {
				h.routes[norm.route] = struct{}{}
			}
		}
	}
	o, ok := cur[norm]
	if ok && len(cur) >= maxCachedKeys {
		// Nothing new to cache: copying the full map on every such request
		// would cost more than building nothing.
		return o
	}
	if !ok {
		o = seriesOptions(norm)
	}
	next := make(map[seriesKey][]metric.RecordOption, len(cur)+2)
	for k, v := range cur {
		next[k] = v
	}
	next[norm] = o
	if len(next) < maxCachedKeys {
		next[key] = o
	}
	h.series.Store(&next)
	return o
}

// routeTemplate returns the path part of a ServeMux pattern, as the
// semantic conventions want http.route ("GET /orders/{id}" → "/orders/{id}",
// "GET api.example.com/x" → "/x"); the method is an attribute of its own.
// A route without "/" (from SetRoute) is kept as it is.
func routeTemplate(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		return pattern[i:]
	}
	return pattern
}

func seriesOptions(key seriesKey) []metric.RecordOption {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", methodName(key.method)),
		attribute.Int("http.response.status_code", key.status),
		attribute.String("url.scheme", scheme(key.tls)),
	}
	if key.route != "" {
		attrs = append(attrs, attribute.String("http.route", key.route))
	}
	if p := protoNames[key.proto]; p != "" {
		attrs = append(attrs, attribute.String("network.protocol.version", p))
	}
	if key.status >= 500 {
		attrs = append(attrs, attribute.String("error.type", strconv.Itoa(key.status)))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// ReportRoute returns mux wrapped so that, after it has served a request,
// the pattern it matched is reported to an enclosing HTTPMiddleware with
// SetRoute. Use it when layers between the middleware and the mux replace
// the *Request.
func ReportRoute(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if r.Pattern != "" {
			SetRoute(w, r.Pattern)
		}
	})
}

// SetRoute records route as the http.route of the request being served on
// w, for routers other than http.ServeMux or layers that replace the
// request. It reaches the middleware's writer through Unwrap chains and does
// nothing when there is none.
func SetRoute(w http.ResponseWriter, route string) {
	for {
		switch x := w.(type) {
		case *responseWriter:
			x.route = route
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// responseWriter records the status code. It implements Unwrap (so
// http.ResponseController reaches the server's writer), Flush, Hijack and
// ReadFrom.
type responseWriter struct {
	http.ResponseWriter
	status int
	route  string
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx other than 101 are informational; the final status comes later.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer can flush.
func (w *responseWriter) Flush() {
	if http.NewResponseController(w.ResponseWriter).Flush() == nil && w.status == 0 {
		w.status = http.StatusOK // flushing sent the headers
	}
}

// ReadFrom implements io.ReaderFrom so that io.Copy (http.ServeContent,
// ServeFile) keeps the server's sendfile path.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Hijack implements http.Hijacker for WebSocket upgrades.
// A failed Hijack (HTTP/2) leaves the status to what the handler writes next.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}
