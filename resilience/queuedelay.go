package resilience

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// QueueDelay measures the standing queue in front of a server: how long
// requests waited between a front proxy (or a load generator) stamping
// them and their handler starting — time in the proxy, the network, the
// kernel's socket buffers and the Go run queue, none of which a limiter
// inside the handler sees. Call Observe as each request's handler starts;
// Delay, the Delay of an AdaptiveConfig, reports the shortest wait
// observed since its previous call.
//
// The shortest, not a percentile: as in CoDel ("minimum sojourn time over
// an interval"), a burst makes some requests wait but leaves the first of
// it unqueued, while a standing queue — the server is past its capacity —
// makes every request wait; so the minimum rises above a target only while
// a queue persists for the whole interval (AdaptiveLimiter's
// DelayInterval, 10 ms by default). That assumes requests start in the
// order they arrived. A Go server saturating one P (GOMAXPROCS=1) starts
// the requests of one network poll in reverse order (the runtime queues
// the goroutines it wakes last-ready first), so the last arrival of a
// batch waits least while the first waited the batch's whole cycle: the
// minimum reads a standing queue low, and the requests' mean wait can be
// several times it (measured on one core at 4× capacity: minimum 2–6 ms,
// mean 9–14 ms, per 10 ms reading; BENCHMARKS.md, "Overload"). Set
// DelayTarget with that in mind. Stamps come from the proxy's clock
// and are read by the server's: keep their skew well under the limiter's
// DelayTarget (same host, or clocks kept by NTP/PTP). The wait includes
// the proxy's own queueing: a proxy (or load generator) that falls behind
// makes the server shed though its core has room.
//
// Observe only stamps set by a trusted proxy that overwrites the header on
// every request (servio checks the peer against its trusted proxies). A
// client that forges stamps controls the signal: a stamp of "now" in
// every reading holds the minimum at 0 (no delay shedding), and at a
// higher rate than the genuine requests an old stamp in every reading
// raises the level until all but critical calls are shed.
//
// The zero value is ready to use. It is safe for concurrent use and does
// not allocate.
type QueueDelay struct {
	min atomic.Int64 // shortest wait since the last Delay, plus 1; 0: none
}

// Observe records the wait of one request. A negative wait (a stamp ahead
// of this host's clock) counts as 0.
func (q *QueueDelay) Observe(wait time.Duration) {
	v := int64(max(wait, 0))
	if v < math.MaxInt64 {
		v++
	}
	for {
		cur := q.min.Load()
		if cur != 0 && cur <= v {
			return
		}
		if q.min.CompareAndSwap(cur, v) {
			return
		}
	}
}

// maxStampAge is the oldest stamp ObserveStamp counts, maxStampAhead how
// far ahead of this host's clock it may be (clock skew).
const (
	maxStampAge   = time.Minute
	maxStampAhead = time.Second
)

// ObserveStamp records the wait from the request-start stamp v (a header
// value, see ParseRequestStart) to now, and reports whether it did: a
// missing or unreadable stamp, or one more than a minute old or a second
// ahead (a clock gone wrong, or a forgery), is not counted; one less than
// a second ahead (clock skew) counts as no wait.
func (q *QueueDelay) ObserveStamp(v string, now time.Time) bool {
	if v == "" {
		return false
	}
	start, ok := ParseRequestStart(v)
	return ok && q.ObserveArrival(start, now)
}

// ObserveArrival is ObserveStamp for a stamp already parsed: it records
// the wait from start to now and reports whether it did (not for a start
// more than a minute old or a second ahead). A caller that also needs the
// arrival (WithArrival) parses the header once and calls this.
func (q *QueueDelay) ObserveArrival(start, now time.Time) bool {
	wait := now.Sub(start)
	if wait > maxStampAge || wait < -maxStampAhead {
		return false
	}
	q.Observe(wait)
	return true
}

// Delay returns the shortest wait observed since its previous call and
// starts a new interval; 0 when none was observed (no requests: no queue).
func (q *QueueDelay) Delay() time.Duration {
	v := q.min.Swap(0)
	if v == 0 {
		return 0
	}
	return time.Duration(v - 1)
}

// Bounds of a request-start stamp (see ParseRequestStart) read as
// seconds, milliseconds, microseconds or nanoseconds since the Unix epoch.
const (
	stampMinSeconds = 1e9 // September 2001
	stampMaxSeconds = 1e10
)

// ParseRequestStart parses the value of a request-start header such as
// X-Request-Start, the time a front proxy received the request:
// "t=1764921600123456" or without "t=", in seconds, milliseconds,
// microseconds or nanoseconds since the Unix epoch (told apart by size,
// as APM agents do: nginx's "t=${msec}" gives seconds with a decimal
// fraction, "t=1764921600.123"; Apache's "%t" microseconds; Heroku's
// router bare milliseconds). It reports false for anything else: empty,
// signs, exponents, hexadecimal, underscores, more than 19 integer or 9
// fraction digits, or a time before 2001 or from 2286 on in every unit.
// It does not allocate.
//
// The header is outside input: believe it only from a proxy that sets it
// on every request, overwriting what clients send (see QueueDelay).
func ParseRequestStart(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "t=")
	intPart, frac, dotted := strings.Cut(v, ".")
	if !allDigits(intPart, 19) || dotted && !allDigits(frac, 9) {
		return time.Time{}, false
	}
	n, _ := strconv.ParseUint(intPart, 10, 64) // ≤ 19 digits: no overflow
	if dotted {
		// Seconds with a fraction.
		if n < stampMinSeconds || n >= stampMaxSeconds {
			return time.Time{}, false
		}
		ns, _ := strconv.ParseUint(frac, 10, 64)
		for range 9 - len(frac) {
			ns *= 10
		}
		return time.Unix(int64(n), int64(ns)), true
	}
	for _, u := range [...]struct {
		scale uint64 // units per second
		nsec  int64  // nanoseconds per unit
	}{{1, 1e9}, {1e3, 1e6}, {1e6, 1e3}, {1e9, 1}} {
		if n >= stampMinSeconds*u.scale && n < stampMaxSeconds*u.scale {
			return time.Unix(int64(n/u.scale), int64(n%u.scale)*u.nsec), true
		}
	}
	return time.Time{}, false
}

// allDigits reports whether s is 1 to maxLen ASCII digits.
func allDigits(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// arrivalKey is the context key of WithArrival.
type arrivalKey struct{}

// WithArrival returns a copy of ctx that carries t, the time the call
// arrived in front of the server: for an HTTP request, the request-start
// stamp of a trusted front proxy (ParseRequestStart). An AdaptiveLimiter
// with MaxWait refuses calls that arrived too long ago while it sheds. The
// zero time is no arrival (Arrival reports false).
func WithArrival(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, arrivalKey{}, t)
}

// Arrival returns the arrival time WithArrival put in ctx, if any; a zero
// time counts as none.
func Arrival(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(arrivalKey{}).(time.Time)
	return t, ok && !t.IsZero()
}
