package httpclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servio/perfkit/resilience"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Throttle defaults: what a zero [ThrottleConfig] field means.
const (
	DefaultThrottleK           = 2.0
	DefaultThrottleWindow      = 2 * time.Minute
	DefaultThrottleMinRequests = 10
	DefaultThrottleRetryAfter  = time.Second
)

// throttleBuckets is the number of time buckets a host's window is kept
// in: counts leave the window in steps of Window/20.
const throttleBuckets = 20

// overflowHost keys the throttle shared by hosts that find the registry
// full of throttling hosts.
const overflowHost = "_overflow"

// ErrThrottled is matched (errors.Is) by every [*ThrottleError].
var ErrThrottled = errors.New("httpclient: throttled")

// ThrottleError is returned, without calling the upstream, for a request
// the client-side throttle rejected because the host has been refusing
// requests (see [ThrottleTransport]). http.Client wraps it in *url.Error;
// errors.Is(err, ErrThrottled) and errors.As see through that.
//
// Refused reports true: the request never left, so breakers
// (resilience.DefaultIsFailure) do not count it. RetryAfter is
// ThrottleConfig.RetryAfter, the wait to suggest to whoever asked (an HTTP
// server answers 503 with it). Throttles return preallocated values, so a
// rejection does not allocate; do not modify them.
type ThrottleError struct {
	// Host is the URL host (host[:port]) whose requests are throttled,
	// or "_overflow" for a host that shares the overflow window (see
	// ThrottleConfig.MaxHosts).
	Host  string
	delay time.Duration
}

// Error implements error.
func (e *ThrottleError) Error() string {
	return "httpclient: request to " + e.Host + " throttled: the host keeps refusing requests"
}

// Is reports whether target is ErrThrottled.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// RetryAfter returns ThrottleConfig.RetryAfter. It implements
// resilience.RetryAfterer.
func (e *ThrottleError) RetryAfter() time.Duration { return e.delay }

// Refused reports true: the throttle turned the request away before it
// reached the host.
func (e *ThrottleError) Refused() bool { return true }

var _ resilience.RetryAfterer = (*ThrottleError)(nil)

// ThrottleConfig configures [NewThrottle]. The zero value is usable: K 2,
// a 2-minute window, no throttling below 10 requests in the window.
type ThrottleConfig struct {
	// K is how many requests per accepted one a host may be sent: the
	// throttle rejects locally with probability
	// max(0, (requests − K·accepts) / (requests + 1)). Default 2; at least 1
	// (below 1 a healthy host would be throttled). Lower is more
	// aggressive: K 1.1 wastes little of an overloaded host's capacity on
	// requests it will refuse, but a host that refuses by design (rate
	// limits) gets throttled sooner, and the slow start after a burst of
	// refusals lasts longer (see ThrottleTransport: 4.5 Windows for K 1.1
	// at 15× overload, 1.3 for K 2). On the overload benchmark
	// (BENCHMARKS.md "Overload"; a host that refuses cost it 10–15 % of
	// a served request) K 1.1 kept 88–109 % of the host's capacity in
	// all twelve steps with throttles kept across steps; throttles new at
	// each step, which met the step's opening refusals with nothing in
	// their window, kept 90–106 % in eight of twelve steps and 27, 49, 77
	// and 89.9 % in the other four (K 2 in the runs beside them: 81–130 %).
	// A host sent K× what it accepts refuses about K − 1 requests per one
	// it serves (counted there: 0.92–1.10 at K 2, 0.48–0.64 at K 1.5), so
	// where a refusal costs the host a tenth of a served request or more,
	// K 1.5 loses half as much of its capacity to refusals as K 2 (in hand
	// rounds there it kept 92–100 % of the host's own rate, K 2 81–99 %)
	// and, unlike K 1.1, still sends enough to keep the host's core busy
	// (K 1.1: 89.5–96 %).
	K float64
	// Window is how far back requests and accepts are counted, in 20 time
	// buckets: a count leaves the window at most Window after it was made.
	// Default 2 min.
	Window time.Duration
	// MinRequests is how many requests (rejected ones included) the window
	// must hold before the throttle rejects anything, so one refusal on a
	// quiet client does not reject the next request with probability 1/2.
	// Default 10.
	MinRequests int
	// RetryAfter is the wait a rejection suggests (ThrottleError.RetryAfter).
	// Default 1 s.
	RetryAfter time.Duration
	// IsAccepted reports whether the host accepted a request: answered
	// something other than an overload signal. Default: a response other
	// than 429, 502, 503 or 504 (a 500 or a 404 is an accept: the host did
	// the work); a transport error (connection refused, a timeout, a reset)
	// is not — a deadline that ended while the request waited for a pooled
	// connection counts as a timeout too. Whatever it says, the caller's own cancellation, a refusal by
	// the breaker below and an error a resend cannot fix (a certificate
	// error, a malformed request) are not counted at all.
	IsAccepted func(resp *http.Response, err error) bool
	// MaxHosts bounds the number of per-host windows kept. When full, a
	// host that is not being throttled is dropped to make room; throttling
	// ones are never dropped. Default 1024.
	MaxHosts int
	// Random returns a uniform float64 in [0, 1) for the rejection draw;
	// it must be safe for concurrent use. Default math/rand/v2.Float64.
	// Tests inject a seeded source.
	Random func() float64
	// Clock supplies the time the window is kept by. Default the system
	// clock. Tests inject a fake.
	Clock resilience.Clock
	// MeterProvider creates perfkit.httpclient.throttle.rejections and
	// perfkit.httpclient.throttle.reject_probability. Default
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

func (o ThrottleConfig) validate() error {
	switch {
	case o.K != 0 && !(o.K >= 1):
		return invalid("Throttle.K %v < 1", o.K)
	case o.Window < 0, o.RetryAfter < 0:
		return invalid("negative Throttle.Window or Throttle.RetryAfter")
	case o.Window > 0 && o.Window < throttleBuckets:
		return invalid("Throttle.Window %v shorter than %d ns", o.Window, throttleBuckets)
	case o.MinRequests < 0, o.MaxHosts < 0:
		return invalid("negative Throttle.MinRequests or Throttle.MaxHosts")
	}
	return nil
}

// ThrottleTransport is client-side adaptive throttling per URL host, as in
// the Google SRE book's "Handling Overload": for each host it counts, over
// a trailing Window, the requests attempted (the ones it rejected
// included) and the requests the host accepted, and before sending it
// rejects a request locally, with a [*ThrottleError], with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// once the window holds MinRequests requests. While the host accepts
// everything nothing is rejected; when it refuses (429, 503, connection
// refused, timeouts) the client keeps sending until requests reach K times
// accepts and then rejects the excess itself. Because rejected requests
// count as requests, the traffic that reaches a host serving C requests
// per window settles near K·C whatever the offered load, and it adapts
// both ways without configuration. Counts are kept per host in 20 time
// buckets, so a count leaves the window at most Window after it was made.
//
// An admitted request is counted when its outcome is known (response
// headers or a transport error), in the bucket of the moment it was sent,
// so one clock reading serves both (a request that outlasts the Window is
// not counted); see ThrottleConfig.IsAccepted for what is an accept and
// what is not counted.
//
// Recovery: when the host recovers, admitted requests are accepted, the
// refusals leave the window and the accepts in it grow by a factor of up
// to e^K per Window. After an offered load λ against a host that accepted
// C (per second), throttling stops about
//
//	(Window/K)·ln((λ/C − 1)/(K − 1))
//
// after the host recovers: within one Window up to an overload of
// 1 + (K−1)·e^K (8.4× with K 2), 2.3 Windows after a host that accepted 1
// in 100. The price of counting rejections is this slow start; it is what
// keeps a client from rushing a host that just came back.
//
// Memory is bounded: at most MaxHosts windows (plus one shared overflow
// window when all of them are throttling), evicted like the breakers of
// [BreakerTransport]: a host being throttled is never forgotten.
//
// It is safe for concurrent use. Admitting a request costs no allocation
// (one clock reading, two locks of the host's window, a random draw only
// when the probability is not 0); neither does a rejection.
type ThrottleTransport struct {
	next        http.RoundTripper
	k           float64
	minRequests int64
	bucket      time.Duration
	retryAfter  time.Duration
	isAccepted  func(*http.Response, error) bool
	random      func() float64
	clock       resilience.Clock
	start       time.Time
	maxHosts    int

	mu    sync.RWMutex
	hosts map[string]*hostWindow
	over  *hostWindow // lazily built overflow window
	// last is the window most recently looked up: a client that talks to
	// one host finds it without the map's lock. It is stored only under mu
	// (read or write), so eviction, which holds mu, can clear it for good.
	last atomic.Pointer[hostWindow]

	rejections metric.Int64Counter
	reg        metric.Registration
}

var _ http.RoundTripper = (*ThrottleTransport)(nil)

// hostWindow is one host's trailing window.
type hostWindow struct {
	host     string
	mu       sync.Mutex
	head     int64 // bucket number of the newest bucket
	reqs     [throttleBuckets]int64
	accs     [throttleBuckets]int64
	requests int64 // sums over the buckets
	accepts  int64

	err      *ThrottleError
	addOpt   []metric.AddOption
	observed metric.ObserveOption
}

// NewThrottle wraps next with client-side adaptive throttling per host.
// A nil next means http.DefaultTransport.
func NewThrottle(next http.RoundTripper, opts ThrottleConfig) (*ThrottleTransport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	t := &ThrottleTransport{
		next:        orDefault(next, http.DefaultTransport),
		k:           orDefault(opts.K, DefaultThrottleK),
		minRequests: int64(orDefault(opts.MinRequests, DefaultThrottleMinRequests)),
		bucket:      orDefault(opts.Window, DefaultThrottleWindow) / throttleBuckets,
		retryAfter:  orDefault(opts.RetryAfter, DefaultThrottleRetryAfter),
		isAccepted:  opts.IsAccepted,
		random:      opts.Random,
		clock:       orDefault(opts.Clock, resilience.SystemClock()),
		maxHosts:    orDefault(opts.MaxHosts, DefaultMaxHosts),
		hosts:       make(map[string]*hostWindow),
	}
	if t.isAccepted == nil {
		t.isAccepted = defaultIsAccepted
	}
	if t.random == nil {
		t.random = rand.Float64
	}
	t.start = t.clock.Now()
	mp := orDefault(opts.MeterProvider, otel.GetMeterProvider())
	meter := mp.Meter(meterName)
	var err error
	t.rejections, err = meter.Int64Counter("perfkit.httpclient.throttle.rejections", metric.WithUnit("{rejection}"),
		metric.WithDescription("Requests the client-side throttle rejected without sending, by host."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create throttle rejections counter: %w", err)
	}
	prob, err := meter.Float64ObservableGauge("perfkit.httpclient.throttle.reject_probability", metric.WithUnit("1"),
		metric.WithDescription("Probability with which the client-side throttle rejects the next request, by host."))
	if err != nil {
		return nil, fmt.Errorf("httpclient: create throttle probability gauge: %w", err)
	}
	t.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := t.epoch()
		t.mu.RLock()
		defer t.mu.RUnlock()
		for _, w := range t.hosts {
			o.ObserveFloat64(prob, w.probability(t, now), w.observed)
		}
		if t.over != nil {
			o.ObserveFloat64(prob, t.over.probability(t, now), t.over.observed)
		}
		return nil
	}, prob)
	if err != nil {
		return nil, fmt.Errorf("httpclient: register throttle gauge: %w", err)
	}
	return t, nil
}

// defaultIsAccepted is ThrottleConfig.IsAccepted's default.
func defaultIsAccepted(resp *http.Response, err error) bool {
	if err != nil {
		return false
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	}
	return true
}

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (t *ThrottleTransport) CloseIdleConnections() { closeIdle(t.next) }

// Close unregisters the probability gauge. The transport keeps working;
// Close is only needed when the MeterProvider outlives the client.
func (t *ThrottleTransport) Close() error { return t.reg.Unregister() }

// RoundTrip implements http.RoundTripper.
func (t *ThrottleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w := t.window(req.URL.Host)
	sent := t.epoch()
	if !w.admit(t, sent) {
		if req.Body != nil {
			req.Body.Close()
		}
		t.rejections.Add(req.Context(), 1, w.addOpt...)
		return nil, w.err
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil || counted(req.Context(), err) {
		w.record(sent, t.isAccepted(resp, err))
	}
	return resp, err
}

// counted reports whether a transport error says something about the
// host: not the caller's cancellation, not a refusal by the breaker below,
// not an error a resend cannot fix.
func counted(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, ErrBreakerOpen) {
		return false
	}
	return retryableError(err)
}

// Probability returns the probability with which the next request to host
// is rejected, and false when host has no window (yet, or any more).
func (t *ThrottleTransport) Probability(host string) (float64, bool) {
	t.mu.RLock()
	w, ok := t.hosts[host]
	t.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return w.probability(t, t.epoch()), true
}

// Len returns the number of per-host windows held (the overflow one aside).
func (t *ThrottleTransport) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.hosts)
}

// epoch returns the number of the current time bucket.
func (t *ThrottleTransport) epoch() int64 {
	return max(int64(t.clock.Now().Sub(t.start)/t.bucket), 0)
}

// window returns host's window, creating it on first use.
func (t *ThrottleTransport) window(host string) *hostWindow {
	if w := t.last.Load(); w != nil && w.host == host {
		return w
	}
	t.mu.RLock()
	w := t.hosts[host]
	if w != nil {
		t.last.Store(w)
	}
	t.mu.RUnlock()
	if w != nil {
		return w
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w = t.hosts[host]; w != nil {
		t.last.Store(w)
		return w
	}
	if len(t.hosts) >= t.maxHosts && !t.evictLocked() {
		if t.over == nil {
			t.over = t.newWindow(overflowHost)
		}
		return t.over
	}
	host = strings.Clone(host)
	w = t.newWindow(host)
	t.hosts[host] = w
	t.last.Store(w)
	return w
}

func (t *ThrottleTransport) newWindow(host string) *hostWindow {
	addr, port := splitHostPort(host, "")
	kv := []attribute.KeyValue{attribute.String("server.address", addr)}
	if port > 0 {
		kv = append(kv, attribute.Int("server.port", port))
	}
	set := attribute.NewSet(kv...)
	return &hostWindow{
		host:     host,
		err:      &ThrottleError{Host: host, delay: t.retryAfter},
		addOpt:   []metric.AddOption{metric.WithAttributeSet(set)},
		observed: metric.WithAttributeSet(set),
	}
}

// evictLocked drops one host that is not being throttled and reports
// whether it found one: forgetting a throttling host would send a
// struggling upstream full traffic again.
func (t *ThrottleTransport) evictLocked() bool {
	now := t.epoch()
	for h, w := range t.hosts {
		if w.probability(t, now) == 0 {
			delete(t.hosts, h)
			t.last.CompareAndSwap(w, nil)
			return true
		}
	}
	return false
}

// advance moves the window to bucket now, emptying the buckets that left
// it. A clock that went back records into the newest bucket.
func (w *hostWindow) advance(now int64) {
	if now <= w.head {
		return
	}
	if now-w.head >= throttleBuckets {
		w.reqs, w.accs = [throttleBuckets]int64{}, [throttleBuckets]int64{}
		w.requests, w.accepts = 0, 0
	} else {
		for b := w.head + 1; b <= now; b++ {
			i := b % throttleBuckets
			w.requests -= w.reqs[i]
			w.accepts -= w.accs[i]
			w.reqs[i], w.accs[i] = 0, 0
		}
	}
	w.head = now
}

// p is the rejection probability of the current counts.
func (w *hostWindow) p(t *ThrottleTransport) float64 {
	if w.requests < t.minRequests {
		return 0
	}
	r := float64(w.requests)
	return max(0, (r-t.k*float64(w.accepts))/(r+1))
}

func (w *hostWindow) probability(t *ThrottleTransport, now int64) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	return w.p(t)
}

// admit draws whether a request goes out; a rejected one is counted as a
// request at once.
func (w *hostWindow) admit(t *ThrottleTransport, now int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	if p := w.p(t); p == 0 || t.random() >= p {
		return true
	}
	w.reqs[w.head%throttleBuckets]++
	w.requests++
	return false
}

// record counts an admitted request, sent in bucket sent, whose outcome
// is now known. A request sent longer than the window ago is not counted.
func (w *hostWindow) record(sent int64, accepted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head-sent >= throttleBuckets {
		return
	}
	i := sent % throttleBuckets
	w.reqs[i]++
	w.requests++
	if accepted {
		w.accs[i]++
		w.accepts++
	}
}
