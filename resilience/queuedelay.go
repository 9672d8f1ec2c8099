package resilience

import (
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
// DelayInterval, 10 ms by default). It also bounds what a client that
// forges its stamp can do: it raises the minimum only if every request of
// an interval carries a forged stamp. Stamps come from the proxy's clock
// and are read by the server's: keep their skew well under the limiter's
// DelayTarget (same host, or clocks kept by NTP/PTP), and trust the header
// only when the proxy overwrites it (see ParseRequestStart).
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

// maxStampAge is the oldest stamp ObserveStamp counts.
const maxStampAge = time.Minute

// ObserveStamp records the wait from the request-start stamp v (a header
// value, see ParseRequestStart) to now, and reports whether it did: a
// missing or unreadable stamp, or one more than a minute old (a clock gone
// wrong, or a forgery), is not counted.
func (q *QueueDelay) ObserveStamp(v string, now time.Time) bool {
	if v == "" {
		return false
	}
	start, ok := ParseRequestStart(v)
	if !ok {
		return false
	}
	wait := now.Sub(start)
	if wait > maxStampAge {
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
// as APM agents do: nginx's "t=${msec}" gives "t=1764921600.123", Apache's
// "%t" microseconds, Heroku's router milliseconds). It reports false for
// anything else: empty, malformed, negative, or a time before 2001 or
// after 2286 in every unit.
//
// The header is outside input: use it only behind a proxy that sets it on
// every request, overwriting what clients send. A request that reaches the
// server directly can claim any start; QueueDelay's minimum limits the
// harm, not the trust.
func ParseRequestStart(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "t=")
	if v == "" || v[0] < '0' || v[0] > '9' {
		return time.Time{}, false
	}
	if strings.ContainsAny(v, ".eE") {
		if strings.ContainsAny(v, "eE") {
			return time.Time{}, false
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < stampMinSeconds || f >= stampMaxSeconds {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return time.Time{}, false
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
