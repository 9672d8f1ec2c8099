package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/ratelimit"
	"github.com/servio/perfkit/resilience"
)

// setupOverload builds the adaptive concurrency limiter that sheds load
// past capacity (nil when -adaptive-limit is off or in baseline mode);
// delay, when set, replaces resilience.SchedulerDelay (tests). A
// request over the limit waits up to 20 ms in a queue of 64 (higher
// priorities first), else gets a 503 with Retry-After at once.
//
// The limit never falls below -adaptive-min-limit (default 100): a latency
// controller cannot tell its own queueing from a dependency that got slow
// (Redis answering only at the cache's 100 ms deadline, a slow database),
// and without a floor it would shed healthy traffic that is merely waiting
// on I/O — 100 req/s at 0.5 s is 50 requests in flight.
//
// The concurrency limit alone does not see CPU overload: servio's handlers
// mostly run to completion without blocking, so on one core hardly two are
// in flight while thousands of requests wait in the run queue before
// reaching the limiter. The limiter therefore also reads the Go
// scheduler's run-queue delay (resilience.SchedulerDelay) and sheds low,
// then normal, then high priority while it stays above
// -adaptive-delay-target (default 0: off; the benchmark uses 2 ms). The
// delay counts only while the process keeps its GOMAXPROCS cores ≥ 90 %
// busy over 100 ms (resilience.ProcessCPUTime, one getrusage call per
// 10 ms reading): bursts of arrivals raise the run-queue delay on a core
// that has room, and shed nothing then. The delay is the whole process's:
// a CPU quota that holds the process under 90 % of GOMAXPROCS cores turns
// the signal off.
//
// With -adaptive-queue-header the delay is instead the queue since the
// arrival a trusted front proxy stamps on each request
// (resilience.QueueDelay: its minimum per 10 ms reading), which also sees
// the requests still in socket buffers; bursts leave its minimum low, so
// there is no CPU gate, and the level rises at most 0.1 per reading. With
// -adaptive-max-wait as well, while the level is above 0 a request that
// waited longer than that since its stamp (normal priority: twice,
// high: four times) is refused before its handler runs
// (resilience.AdaptiveConfig.MaxWait).
//
// With -adaptive-network-first N the limit is N (the adaptive limit and
// -adaptive-min-limit do not apply; each priority's share of it does, at
// least one request), N×8 requests queue and the rest are refused at
// once, and a slot freed while requests wait passes on only after the Go
// runtime has polled the network
// (resilience.AdaptiveConfig.NetworkFirst): on a busy core a new request
// is then read between two handlers, not after the runtime's next 10 ms
// poll, so its refusal is fast too. On SQLite the store then yields to
// the network (resilience.AdaptiveLimiter.YieldToNetwork) before and
// after each read and transaction (store.Store.SetYield): a query to the
// embedded SQLite runs on the handler's goroutine, where one to
// PostgreSQL waits on the network and lets the runtime read new requests
// meanwhile, so a handler that queries holds the core no longer than its
// longest stretch between yields.
func (a *App) setupOverload(delay func() time.Duration) error {
	if !a.cfg.AdaptiveLimit || a.cfg.Baseline {
		return nil
	}
	cfg := resilience.AdaptiveConfig{Name: "servio",
		MinLimit: a.cfg.AdaptiveMinLimit, InitialLimit: a.cfg.AdaptiveMinLimit,
		MaxQueue: 64, QueueTimeout: 20 * time.Millisecond, MeterProvider: a.metrics}
	if a.cfg.AdaptiveDelayTarget > 0 {
		cfg.Delay, cfg.DelayTarget = resilience.SchedulerDelay(), a.cfg.AdaptiveDelayTarget
		cfg.CPUTime = resilience.ProcessCPUTime()
		if a.cfg.AdaptiveQueueHeader != "" {
			// The whole queue since the proxy's stamp: its minimum per
			// reading filters bursts without the CPU gate, and the level
			// rises a tenth per reading at most (see
			// resilience.AdaptiveConfig.DelayMaxRise).
			a.queue = new(resilience.QueueDelay)
			cfg.Delay, cfg.CPUTime, cfg.DelayMaxRise = a.queue.Delay, nil, 0.1
			cfg.MaxWait = a.cfg.AdaptiveMaxWait
		}
		if delay != nil {
			// Tests drive the delay alone: their process is not CPU-bound
			// (the CPU gate is resilience's, tested there).
			cfg.Delay, cfg.CPUTime = delay, nil
		}
	}
	if n := a.cfg.AdaptiveNetworkFirst; n > 0 {
		cfg.MinLimit, cfg.MaxLimit, cfg.InitialLimit = n, n, n
		cfg.MaxQueue, cfg.QueueTimeout, cfg.NetworkFirst = 8*n, 0, true
	}
	l, err := resilience.NewAdaptiveLimiter(cfg)
	if err != nil {
		return err
	}
	a.overload = l
	a.closers = append(a.closers, l.Close)
	if cfg.NetworkFirst && a.st.Dialect() == store.SQLite {
		// A query to PostgreSQL waits on the network, where the runtime
		// polls already.
		a.st.SetYield(l.YieldToNetwork)
	}
	return nil
}

// observeQueue records in q how long each request waited since the
// arrival a front proxy stamped in its header before servio began to
// handle it (resilience.QueueDelay.ObserveArrival) and, with arrival set,
// puts that arrival in the request's context for the limiter's MaxWait
// (resilience.WithArrival) — only for requests that came straight from
// one of the -trusted-proxies: anyone else's stamp is the client's word,
// and would let it switch the shedding off or on. Stamps ObserveArrival
// ignores (over a minute old, over a second ahead) give no arrival
// either: such a request is never refused for its age.
func observeQueue(q *resilience.QueueDelay, header string, proxies *ratelimit.ClientIP, arrival bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if proxies.TrustedPeer(r) {
			start, ok := resilience.ParseRequestStart(r.Header.Get(header))
			if ok && q.ObserveArrival(start, time.Now()) && arrival {
				r = r.WithContext(resilience.WithArrival(r.Context(), start))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// routePriority is the priority of a route under overload: health probes
// and the metrics scrape are critical (never shed); placing orders,
// changing their status and logging in are high; the assistant and uploads
// are low; everything else (reads, menu edits) is normal.
func routePriority(method, path string) resilience.Priority {
	switch {
	case strings.HasPrefix(path, "/health"), path == "/metrics":
		return resilience.PriorityCritical
	case method == http.MethodPost && path == "/orders",
		method == http.MethodPatch && path == "/orders/{id}",
		method == http.MethodPost && path == "/auth/login":
		return resilience.PriorityHigh
	case path == "/assistant/query", path == "/uploads":
		return resilience.PriorityLow
	default:
		return resilience.PriorityNormal
	}
}

// shed returns the middleware that admits requests to the route method
// path through the adaptive limiter at the route's priority, answering
// 503 with Retry-After and servio's JSON error body when it refuses. It
// is the identity when the limiter is off. The latency of each admitted
// request feeds the limit, except when the client went away.
func (a *App) shed(method, path string) func(http.Handler) http.Handler {
	l := a.overload
	if l == nil {
		return func(h http.Handler) http.Handler { return h }
	}
	p := routePriority(method, path)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			permit, err := l.Acquire(r.Context(), p)
			if err != nil {
				w.Header().Set("Server-Timing", shedTiming(time.Since(start)))
				overloaded(w, err)
				return
			}
			defer func() { permit.Release(r.Context().Err()) }()
			next.ServeHTTP(w, r)
		})
	}
}

// shedTiming is the Server-Timing header value of a refusal: how long the
// limiter took to decide, in milliseconds ("shed;dur=0.004"), so a load
// generator can tell the server's share of a rejection's latency from the
// network's.
func shedTiming(d time.Duration) string {
	return "shed;dur=" + strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// overloaded answers a request the limiter refused: 503, Retry-After in
// whole seconds (at least 1) and {"error": ..., "retry_after": s}, the
// shape of a rate-limit denial. Refusals are what an overloaded server
// answers most, so the body is appended by hand (its text needs no JSON
// escaping: TestOverloadedBody) and the header is set in canonical form.
func overloaded(w http.ResponseWriter, err error) {
	secs, prio := int64(1), ""
	var oe *resilience.OverloadError
	if errors.As(err, &oe) {
		secs = max(1, int64((oe.RetryAfter()+time.Second-1)/time.Second))
		prio = " (" + oe.Priority.String() + " priority)"
	}
	var buf [128]byte
	b := append(buf[:0], `{"error":"server overloaded`...)
	b = append(b, prio...)
	b = append(b, "; retry in "...)
	b = strconv.AppendInt(b, secs, 10)
	b = append(b, ` s","retry_after":`...)
	b = strconv.AppendInt(b, secs, 10)
	b = append(b, '}')
	w.Header()["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	writeRaw(w, http.StatusServiceUnavailable, b)
}
