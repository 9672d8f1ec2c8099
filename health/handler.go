package health

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// HandlerConfig configures the HTTP handlers. The zero value serves under
// /health, shows details to nobody and serves no metrics.
type HandlerConfig struct {
	// PathPrefix is the URL path the endpoints live under. Default
	// "/health"; "/" serves them at the root (/, /ready, ...).
	PathPrefix string
	// Authorizer reports whether a request may see details (checks,
	// outputs and service versions) and use ?exclude and ?verbose. Others
	// get {"status":...} alone, computed over every check: their query
	// string is ignored. Default nil: nobody; see BearerToken,
	// PrivateNetwork and AllowAll.
	Authorizer func(*http.Request) bool
	// Metrics, when set, is served at PathPrefix+"/metrics" as it is (the
	// Authorizer does not apply; wrap it to restrict it) — normally the
	// Prometheus handler of the application's MeterProvider.
	Metrics http.Handler
}

// The endpoints under HandlerConfig.PathPrefix.
const (
	pathDetailed = "/detailed"
	pathLive     = "/live"
	pathReady    = "/ready"
	pathMetrics  = "/metrics"
)

const contentType = "application/health+json"

// handler serves the health endpoints.
type handler struct {
	c      *Checker
	cfg    HandlerConfig
	ct     []string  // Content-Type header value, shared to spare an allocation
	cc     []string  // Cache-Control header value
	status [3][]byte // {"status":...} bodies per status
}

var _ http.Handler = (*handler)(nil)

// Handler returns an http.Handler serving PathPrefix, PathPrefix/detailed,
// PathPrefix/live, PathPrefix/ready and PathPrefix/metrics (when
// HandlerConfig.Metrics is set); other paths get 404 and methods other than
// GET and HEAD get 405.
func (c *Checker) Handler(cfg HandlerConfig) http.Handler {
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = "/health"
	}
	cfg.PathPrefix = strings.TrimSuffix(cfg.PathPrefix, "/")
	h := &handler{c: c, cfg: cfg, ct: []string{contentType}, cc: []string{"no-store"}}
	for s := StatusPass; s <= StatusFail; s++ {
		h.status[s] = []byte(`{"status":"` + s.String() + `"}` + "\n")
	}
	return h
}

// Mount registers Handler(cfg) on mux for PathPrefix and everything under
// PathPrefix+"/" (PathPrefix "/" mounts the endpoints at the root: /,
// /ready, ...). Each endpoint is a pattern of its own (PathPrefix+"/live",
// "/ready", "/detailed", "/metrics" when HandlerConfig.Metrics is set), so
// HTTP metrics that take http.route from the matched pattern tell them
// apart. Like ServeMux.Handle it panics if those patterns are taken.
func (c *Checker) Mount(mux *http.ServeMux, cfg HandlerConfig) {
	h := c.Handler(cfg).(*handler)
	if h.cfg.PathPrefix != "" {
		mux.Handle(h.cfg.PathPrefix, h)
	}
	paths := []string{pathLive, pathReady, pathDetailed}
	if h.cfg.Metrics != nil {
		paths = append(paths, pathMetrics)
	}
	for _, p := range paths {
		mux.Handle(h.cfg.PathPrefix+p, h)
	}
	mux.Handle(h.cfg.PathPrefix+"/", h)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, h.cfg.PathPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if rest == pathMetrics && h.cfg.Metrics != nil {
		h.cfg.Metrics.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch rest {
	case "", "/":
		h.serveStatus(w, r, false, false)
	case pathReady:
		h.serveStatus(w, r, true, false)
	case pathDetailed:
		h.serveStatus(w, r, false, true)
	case pathLive:
		// The process answers, so it is live; nothing else is consulted.
		h.write(w, r, http.StatusOK, h.status[StatusPass])
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) serveStatus(w http.ResponseWriter, r *http.Request, ready, detailed bool) {
	allowed := h.cfg.Authorizer != nil && h.cfg.Authorizer(r)
	if !allowed {
		// ?exclude and ?verbose are ignored: leaving a failing check out
		// would let any client make the instance look healthy.
		st, _ := h.c.status(r.Context(), query{}, ready)
		h.write(w, r, st.HTTPStatus(), h.status[st])
		return
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.write(w, r, http.StatusBadRequest, []byte(`{"status":"fail","output":"bad query"}`+"\n"))
		return
	}
	rep := h.c.report(r.Context(), q, ready)
	h.write(w, r, rep.Status.HTTPStatus(), h.c.marshal(rep, detailed || q.verbose))
}

func (h *handler) write(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	hd := w.Header()
	hd["Content-Type"] = h.ct
	hd["Cache-Control"] = h.cc
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// AllowAll is an Authorizer that shows details to every caller; use it only
// where the health endpoints are not reachable from outside.
func AllowAll(*http.Request) bool { return true }

// BearerToken returns an Authorizer accepting requests with the header
// "Authorization: Bearer <token>", compared in constant time. An empty
// token accepts nobody.
func BearerToken(token string) func(*http.Request) bool {
	want := []byte(token)
	return func(r *http.Request) bool {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && len(want) > 0 && subtle.ConstantTimeCompare([]byte(got), want) == 1
	}
}

// PrivateNetwork is an Authorizer accepting requests whose peer address
// (RemoteAddr, not X-Forwarded-For) is loopback or in a private range
// (10/8, 172.16/12, 192.168/16, fc00::/7).
func PrivateNetwork(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate())
}
