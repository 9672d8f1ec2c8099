package httpclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/servio/perfkit/httpclient"

// durationBuckets returns the boundaries advised for
// http.client.request.duration, in seconds: the OpenTelemetry HTTP
// semantic conventions' (5 ms to 10 s) extended to 60 s, since outbound
// calls outlast inbound ones (an LLM answer takes tens of seconds;
// resilience.OpenAI's timeout is 30 s) and a slow call past 10 s would
// otherwise fall in the +Inf bucket. A func, not a package variable, so no
// caller can change them for everyone.
func durationBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 45, 60}
}

// Low-cardinality error.type values for transport errors.
const (
	errTypeCircuitOpen = "circuit_open"
	errTypeThrottled   = "throttled"
	errTypeCanceled    = "canceled"
	errTypeTimeout     = "timeout"
	errTypeOther       = "_OTHER"
)

// attrKey identifies one precomputed attribute set. method is canonical
// (a known method constant or "_OTHER"); host is URL.Host.
type attrKey struct {
	method, scheme, host, route, errType string
	status                               int
}

type attrEntry struct {
	rec []metric.RecordOption
	add []metric.AddOption
}

// attrCache hands out prebuilt measurement options so recording a
// measurement for a known (method, host, route, status) allocates nothing.
// At most max sets are cached; beyond that sets are built per call, which
// allocates but keeps memory bounded when routes are misused.
type attrCache struct {
	mu  sync.RWMutex
	m   map[attrKey]*attrEntry
	max int
}

func newAttrCache(max int) *attrCache {
	return &attrCache{m: make(map[attrKey]*attrEntry), max: max}
}

func (c *attrCache) get(req *http.Request, route string, status int, errType string) *attrEntry {
	k := attrKey{
		method:  canonicalMethod(req.Method),
		scheme:  req.URL.Scheme,
		host:    req.URL.Host,
		route:   route,
		errType: errType,
		status:  status,
	}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return e
	}
	e = buildEntry(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		return old
	}
	if len(c.m) < c.max {
		k.scheme, k.host, k.route = strings.Clone(k.scheme), strings.Clone(k.host), strings.Clone(k.route)
		c.m[k] = e
	}
	return e
}

func buildEntry(k attrKey) *attrEntry {
	kv := make([]attribute.KeyValue, 0, 7)
	kv = append(kv, attribute.String("http.request.method", k.method))
	host, port := splitHostPort(k.host, k.scheme)
	kv = append(kv, attribute.String("server.address", host))
	if port > 0 {
		kv = append(kv, attribute.Int("server.port", port))
	}
	if k.status > 0 {
		kv = append(kv, attribute.Int("http.response.status_code", k.status))
	}
	if k.route != "" {
		kv = append(kv, attribute.String("http.route", k.route))
	}
	switch {
	case k.errType != "":
		kv = append(kv, attribute.String("error.type", k.errType))
	case k.status >= 400:
		kv = append(kv, attribute.String("error.type", strconv.Itoa(k.status)))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kv...))
	return &attrEntry{rec: []metric.RecordOption{opt}, add: []metric.AddOption{opt}}
}

func splitHostPort(hostport, scheme string) (string, int) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
		switch scheme {
		case "https":
			return host, 443
		case "http":
			return host, 80
		}
		return host, 0
	}
	port, _ := strconv.Atoi(portStr)
	return host, port
}

func canonicalMethod(m string) string {
	switch m {
	case "", http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodTrace:
		return http.MethodTrace
	}
	return "_OTHER"
}

// errorType maps a transport error to a low-cardinality error.type value.
func errorType(err error) string {
	var be *BreakerOpenError
	var ne net.Error
	switch {
	case errors.As(err, &be):
		return errTypeCircuitOpen
	case errors.Is(err, ErrThrottled):
		return errTypeThrottled
	case errors.Is(err, context.Canceled):
		return errTypeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTypeTimeout
	}
	return errTypeOther
}
