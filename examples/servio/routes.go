package main

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/ratelimit"
)

// denied answers a rate-limited request in servio's error shape; the
// RateLimit and Retry-After headers are already set. A 503 means Redis could
// not decide for a fail-closed tier (Auth).
func denied(w http.ResponseWriter, _ *http.Request, res ratelimit.Result, status int, retryAfter int64) {
	msg := "rate limit exceeded (" + res.Tier + " tier); retry in " + strconv.FormatInt(retryAfter, 10) + " s"
	if status == http.StatusServiceUnavailable {
		msg = "rate limiting unavailable (" + res.Tier + " tier); retry in " + strconv.FormatInt(retryAfter, 10) + " s"
	}
	writeJSON(w, status, map[string]any{"error": msg, "retry_after": retryAfter})
}

// routes registers every route of DESIGN.md behind the adaptive
// concurrency limit (shed; the orders export has a bulkhead of its own
// instead, see export.go), the Global rate limit and its own tier, mounts the health endpoints (never rate limited) and
// wraps it all in the HTTP metrics middleware and panic recovery.
func (a *App) routes() (http.Handler, error) {
	tiers := ratelimit.Tiers()
	ipKey, err := ratelimit.ClientIPKey(ratelimit.IPConfig{TrustedProxies: a.cfg.TrustedProxies})
	if err != nil {
		return nil, err
	}
	// Global and Auth count per client address; the other tiers per
	// signed-in user when a valid token is sent, else per address.
	userOrIP := ratelimit.FirstKey(a.userKey, ipKey)
	limit := func(t ratelimit.Tier) (func(http.Handler) http.Handler, error) {
		if !a.cfg.RateLimit || a.cfg.Baseline {
			return func(h http.Handler) http.Handler { return h }, nil
		}
		key := userOrIP
		if t.Name == tiers.Global.Name || t.Name == tiers.Auth.Name {
			key = ipKey
		}
		l, err := a.limits.Limiter(t)
		if err != nil {
			return nil, err
		}
		return ratelimit.Middleware(l, ratelimit.MiddlewareConfig{Key: key, Denied: denied, MeterProvider: a.metrics, Logger: a.log})
	}
	global, err := limit(tiers.Global)
	if err != nil {
		return nil, err
	}
	byTier := map[string]func(http.Handler) http.Handler{}
	for _, t := range []ratelimit.Tier{tiers.API, tiers.Auth, tiers.Heavy, tiers.Uploads} {
		if byTier[t.Name], err = limit(t); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	allowed := map[string][]string{}
	cost := a.benchCost()
	handle := func(t ratelimit.Tier, method, path string, h http.HandlerFunc) {
		mux.Handle(method+" "+path, a.shed(method, path)(global(byTier[t.Name](cost(h)))))
		allowed[path] = append(allowed[path], method)
	}
	handle(tiers.API, "GET", "/restaurants/{id}/menu", a.getMenu)
	handle(tiers.API, "POST", "/restaurants/{id}/menu", a.addMenuItem)
	handle(tiers.API, "PATCH", "/menu-items/{id}", a.patchMenuItem)
	handle(tiers.API, "GET", "/orders/{id}", a.getOrder)
	handle(tiers.API, "PATCH", "/orders/{id}", a.patchOrder)
	handle(tiers.API, "GET", "/restaurants/{id}/orders", a.listOrders)
	handle(tiers.API, "POST", "/orders", a.createOrder)
	handle(tiers.API, "GET", "/restaurants/{id}/inventory/low-stock", a.lowStock)
	handle(tiers.Auth, "POST", "/auth/login", a.login)
	handle(tiers.Heavy, "POST", "/assistant/query", a.assistantQuery)
	handle(tiers.Uploads, "POST", "/uploads", a.upload)
	// The export streams as long as its data lasts: Heavy tier, its own
	// bulkhead instead of the adaptive limiter (see export.go).
	if a.export, err = newExporter(a, a.metrics); err != nil {
		return nil, err
	}
	mux.Handle("GET /restaurants/{id}/orders/export", global(byTier[tiers.Heavy.Name](http.HandlerFunc(a.export.serve))))
	allowed["/restaurants/{id}/orders/export"] = []string{"GET"}
	// A method-less pattern per path answers other methods with a JSON 405
	// (the mux's own 405 is plain text).
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
		})
	}
	a.mountHealth(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})

	mw, err := metrics.NewHTTPMiddleware(metrics.HTTPConfig{MeterProvider: a.metrics})
	if err != nil {
		return nil, err
	}
	return recoverer(a.log, jsonErrors(mw.Wrap(metrics.ReportRoute(mux)))), nil
}

// userKey is the rate-limit key of a request with a valid user's bearer
// token ("user:42"), or "" (no token, a guest's order token, or one that
// does not verify).
func (a *App) userKey(r *http.Request) string {
	tok := bearer(r)
	if tok == "" {
		return ""
	}
	c, err := a.tokens.verify(tok)
	if err != nil || c.Sub == 0 {
		// Guests count per address: a fresh order token per order
		// must not be a fresh rate-limit bucket.
		return ""
	}
	return "user:" + strconv.FormatInt(c.Sub, 10)
}
