package httpclient

import (
	"context"
	"net/http"
)

type routeKey struct{}

// WithRoute returns a context that labels requests made with it with a route
// template such as "/v1/orders/{id}". The metrics and retry layers use the
// template as the http.route attribute and in log lines, so ids in paths do
// not become metric labels. Requests without a route are recorded with no
// http.route attribute; the raw path is never used.
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// RouteFromContext returns the route template set by [WithRoute], or "".
func RouteFromContext(ctx context.Context) string {
	r, _ := ctx.Value(routeKey{}).(string)
	return r
}

// RouteFromRequest is the default route function of the metrics and retry
// layers: the template set on the request context by [WithRoute], or "".
func RouteFromRequest(req *http.Request) string {
	return RouteFromContext(req.Context())
}

type attemptKey struct{}

// AttemptFromContext returns the 1-based attempt number of the request
// whose context this is: the retry layer sets 2, 3, … on resends, so a
// RoundTripper below it (or a test server's client) can tell attempts
// apart. It returns 1 when no retry layer has resent the request.
func AttemptFromContext(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}
