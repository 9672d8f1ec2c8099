package resilience

import (
	"cmp"
	"context"
	"errors"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ErrOverloaded is matched (errors.Is) by every *OverloadError: an
// AdaptiveLimiter refused a call because too many were in flight.
var ErrOverloaded = errors.New("resilience: overloaded")

// AdaptiveConfig configures an AdaptiveLimiter. AdaptiveConfig{} starts at
// 20 concurrent calls, lets the limit move between 1 and 1000 and rejects a
// call over the limit at once.
type AdaptiveConfig struct {
	// Name labels errors and metrics. Default "adaptive".
	Name string
	// InitialLimit is the limit before the first measurement. Default 20
	// (clamped to [MinLimit, MaxLimit]).
	InitialLimit int
	// MinLimit is the lowest the limit goes. Default 1.
	MinLimit int
	// MaxLimit is the highest the limit goes. Default 1000.
	MaxLimit int
	// Window is the shortest sampling window: the limit is recomputed when
	// a window has lasted Window and holds at least WindowSamples
	// latencies. Default 100 ms.
	Window time.Duration
	// WindowSamples is the fewest latencies a window needs. Default 10.
	WindowSamples int
	// LongWindow is how many windows the long-term latency averages over
	// (an exponential average of weight 2/(LongWindow+1)). Default 100.
	LongWindow int
	// Tolerance is how much the short-term latency may exceed the
	// long-term one before the limit shrinks. Default 1.5; at least 1.
	Tolerance float64
	// Smoothing is the weight of a new limit against the old one, in
	// (0, 1]. Default 0.2.
	Smoothing float64
	// MaxQueue is the number of calls allowed to wait for a slot when the
	// limit is reached. Default 0: reject at once.
	MaxQueue int
	// QueueTimeout bounds the wait of a queued call. Default 0: wait until
	// a slot frees or the context is done.
	QueueTimeout time.Duration
	// RetryAfter is the delay a rejection asks for
	// (OverloadError.RetryAfter). Default 1 s.
	RetryAfter time.Duration
	// Delay, when set, is a second congestion signal: how long work waits
	// before it even reaches Acquire — for a server, the wait of request
	// goroutines in the Go scheduler's run queue (SchedulerDelay), or,
	// behind a proxy that stamps each request, the whole wait since the
	// stamp (QueueDelay's Delay). The limiter reads it every DelayInterval and, while it stays above
	// DelayTarget, sheds calls by priority (see AdaptiveLimiter). Default
	// nil: only the concurrency limit sheds.
	Delay func() time.Duration
	// DelayTarget is the delay above which the limiter sheds. Default 2 ms.
	DelayTarget time.Duration
	// DelayInterval is how often Delay is read, by the Acquire call that
	// finds the last reading older than this. Default 10 ms.
	DelayInterval time.Duration
	// DelayMaxRise is the most the shed level (0 to 3, see
	// AdaptiveLimiter) rises in one reading of Delay, in (0, 1]. Default
	// 1, or 0.05 with CPUTime. A signal that sees the whole queue
	// (QueueDelay) needs less than 1: the queue it reads lags the level
	// by the queue's own length, and a level that rises a whole priority
	// per reading overshoots — on the overload benchmark's stand-in at 2×,
	// 0.1 served 86–87 % of its capacity's work where 1 served 74 %
	// (single runs, BENCHMARKS.md "Overload").
	DelayMaxRise float64
	// MaxWait, when set with Delay, also refuses calls that waited too
	// long before Acquire, while the shed level is above 0: a call whose
	// context carries the time it arrived in front of the server
	// (WithArrival; a front proxy's stamp, see ParseRequestStart) is
	// refused if it arrived more than MaxWait ago for PriorityLow, 2×
	// MaxWait for PriorityNormal, 4× for PriorityHigh; PriorityCritical
	// never. The gate is on for every priority as soon as the level
	// passes 0, though the level itself sheds High only above 2: an old
	// call is late whatever its priority, and the thresholds keep the
	// order by age, not strictly: a High call that waited more than 4×
	// MaxWait is refused while a fresh Normal one is admitted (on the
	// overload benchmark's stand-in at 4× capacity with 2 ms, the server
	// refused about a quarter of the High calls while 18 % of the Normal
	// ones were served, and it served about 10 points more of the
	// capacity's requests than the strict order allowed for the same
	// work). A call without an arrival time is not affected. The wait is
	// counted from the proxy's clock: the hosts' clocks must agree to well
	// under MaxWait. Refusals return the same *OverloadError as the
	// level's; perfkit.resilience.adaptive.rejections counts them with
	// resilience.reason "late". On one busy P the requests of a network
	// poll start newest first (see QueueDelay), so the oldest of each
	// batch reach Acquire last; refusing them is what bounds the admitted
	// calls' wait. Default 0: off.
	MaxWait time.Duration
	// CPUTime, when set with Delay, gates the Delay signal on CPU use: it
	// returns the CPU time (user + system) the process has used so far
	// (ProcessCPUTime reads it from the OS). It is read with Delay; the
	// shed level then rises only while the process kept at least 90 % of
	// CPUs busy over the last 10 readings (100 ms by default) and the last
	// reading was not mostly idle, and otherwise falls by how much room
	// the CPUs had (see AdaptiveLimiter). Default nil: the delay alone
	// moves the level.
	CPUTime func() time.Duration
	// CPUs is how many cores' worth of CPU time the process can use in a
	// second, for CPUTime. Default runtime.GOMAXPROCS(0) at each reading.
	CPUs int
	// NetworkFirst, with a queue (MaxQueue), hands a slot freed while
	// calls wait to the next of them only after the Go runtime has polled
	// the network, and lets the goroutines that poll woke run first; a
	// call admitted at once also lets the goroutines already runnable run
	// before it returns. It is for a server whose CPU-bound handlers share
	// few Ps (GOMAXPROCS=1) behind a small fixed limit (MinLimit =
	// MaxLimit = the handlers that may run at once, 1 on one P). The
	// runtime polls the network only when a P runs out of goroutines to
	// run, or every 10 ms (sysmon) when none does; a limiter that hands
	// each freed slot straight to a waiter keeps the P busy for good, so a
	// new request waits in its socket buffer for that tick and then in the
	// run queue, and a refusal takes as long as any answer. With
	// NetworkFirst the requests that arrive while a handler runs reach
	// Acquire before the next handler starts, and MaxQueue's bound
	// refuses them at once. A call is then admitted at once only while no
	// call of its priority or higher waits. Costs: every admitted call
	// (but critical ones) yields twice (runtime.Gosched), and a handoff
	// while calls wait writes a byte to a pipe and wakes a goroutine. It
	// starts that goroutine, which Close stops; if the pipe fails,
	// handoffs go direct. It needs MaxQueue (nothing is ever handed off
	// without a queue) and an OS whose pipes Go's network poller serves
	// (Linux, the BSDs, macOS; elsewhere a handoff does not wait for a
	// poll).
	//
	// It does not fit every server: a handler that holds its slot while it
	// waits on I/O holds every queued call back, and one that runs long on
	// the CPU (a 20 ms password hash) delays the reading of new requests
	// for as long — for such a mix prefer MaxWait, or, where the long
	// work comes in phases (queries to an embedded database, then an
	// encode), yield to the network between them (YieldToNetwork). And if
	// other work keeps the Ps busy, a handoff waits for the runtime's 10 ms
	// poll.
	//
	// On the overload benchmark's stand-in with the mix (reads
	// only, 0.4 ms each; one P; limit 1, MaxQueue 8; clients that throttle
	// at K = 2), in nineteen runs it served 75–119 % of the capacity at
	// 2× and 78–118 % at 4× (medians 98 / 93 %; the capacity each run
	// found moved by ±20 %), admitted p99 7–23 ms (at most 4.2× its own
	// unloaded p99), probes at most 32 ms, and at 2× and 4× its refusals
	// left the server 0.31–0.49 ms (p50) and 1.3–5.9 ms (p99) after the
	// request arrived (tcpdump on the loopback; in the last eight runs
	// 92–98 % of them under 1 ms, where a server that only refuses
	// answered 94–99 % under 1 ms), against about 7 and 22–37 ms for
	// MaxWait 2 ms in the same runs (BENCHMARKS.md, "Overload"). Every
	// request it refuses is still read and answered on its core: clients
	// that throttle at K = 1.5 send it half the refusals of K = 2 (0.5
	// against 1 per served read); in hand rounds beside the limiter-off
	// server's own rate that kept 92–100 % of it against 81–99 %, though
	// in four script runs the machine's drift hid the difference.
	//
	// Most of what is left of its refusals' tail comes with the garbage
	// collector, and only because the P is busy. With no idle time a mark
	// phase is done by the runtime's fractional worker, in stints of
	// about 7 % of the phase so far (1.4 ms 20 ms in, 5 ms at 70 ms)
	// during which nothing else runs on the P; a server with idle time
	// does most of its marking between requests, in short phases (the
	// stand-in refusing everything, 17 % busy, answered at p99 0.34 ms
	// through four collections). A phase lasts as long as there is to
	// mark, and each open connection is a goroutine and buffers: the
	// stand-in marked for about 50 ms with 4,000 connections, about 18 ms
	// with 1,000. So bound the connections to one instance (a front
	// proxy's pool) and raise GOGC with them, since the smaller heap
	// would otherwise collect more often. Over eight script runs at 2×
	// and 4× (K = 1.5, the stand-in allocating what servio does per
	// request), with 1,024 connections and GOGC=400 every bound held on
	// the medians and in seven runs of eight at each step: refusals on
	// the wire at p99 0.64 / 0.65 ms (99.5 / 99.6 % under 1 ms),
	// goodput 104 / 108 % of the capacity, admitted p99 2.6 / 2.5×
	// unloaded, probes at most 5.6 ms; with 4,000 connections at the
	// default GOGC the refusals' p99 was 1.27 / 1.29 ms (BENCHMARKS.md,
	// "Overload").
	NetworkFirst bool
	// Clock measures latencies and times queue waits. Default the system
	// clock.
	Clock Clock
	// MeterProvider for metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Why an AdaptiveLimiter refused a call: the resilience.reason attribute
// of perfkit.resilience.adaptive.rejections.
const (
	rejectShed    = iota // the Delay signal's shed level drew it
	rejectLate           // it arrived longer ago than MaxWait allows
	rejectFull           // no room under the limit and the queue full
	rejectQueued         // it waited in the queue: QueueTimeout or its context ended
	rejectReasons        // the number of reasons
)

var rejectReasonNames = [rejectReasons]string{"shed", "late", "full", "queued"}

// Defaults of AdaptiveConfig.
const (
	defaultAdaptiveInitial    = 20
	defaultAdaptiveMax        = 1000
	defaultAdaptiveWindow     = 100 * time.Millisecond
	defaultAdaptiveSamples    = 10
	defaultAdaptiveLong       = 100
	defaultAdaptiveTolerance  = 1.5
	defaultAdaptiveSmoothing  = 0.2
	defaultAdaptiveRetryAfter = time.Second
	defaultDelayTarget        = 2 * time.Millisecond
	defaultDelayInterval      = 10 * time.Millisecond
	// delayGain is how far one reading moves the shed level per unit of
	// relative error (delay/target − 1, clamped to [−1, delayMaxErr] by
	// default, [−1, cpuMaxErr] with CPUTime, [−1, DelayMaxRise/delayGain]
	// when that is set).
	delayGain   = 0.1
	delayMaxErr = 10
	// With CPUTime: cpuWindow is how many readings the CPU utilisation
	// gating the Delay signal spans, cpuBusy the utilisation at which it
	// opens, cpuIdle the utilisation under which a single reading counts
	// as the backlog gone, cpuMaxErr the largest error a reading adds (the
	// level rises by at most 0.05 per reading) and cpuFall the gain of the
	// fall when the core has room.
	cpuWindow = 10
	cpuBusy   = 0.9
	cpuIdle   = 0.6
	cpuMaxErr = 0.5
	cpuFall   = 2
)

// OverloadError is returned when an AdaptiveLimiter refuses a call; it
// matches ErrOverloaded. The call never reached the dependency: Refused
// reports true, so breakers (DefaultIsFailure) do not count it, and
// RetryAfter tells callers when to come back (an HTTP server answers 503
// with a Retry-After header). Queued reports whether the call waited in the
// queue; Err is the context's error when the caller's context ended that
// wait (errors.Is reaches it). Limiters return preallocated values, so a
// rejection does not allocate; do not modify them.
type OverloadError struct {
	Name     string        // limiter name
	Priority Priority      // the refused call's priority
	Queued   bool          // the call waited in the queue before the refusal
	Delay    time.Duration // how long callers should wait before trying again
	Err      error         // the context's error if it ended the wait, else nil
}

// Error describes why the call was refused.
func (e *OverloadError) Error() string {
	return refusalMessage("resilience: overloaded, "+e.Priority.String()+" priority call refused", e.Queued, e.Err, e.Name)
}

// Is reports whether target is ErrOverloaded.
func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// Unwrap returns the context's error that ended the wait, or nil.
func (e *OverloadError) Unwrap() error { return e.Err }

// RetryAfter returns Delay (AdaptiveConfig.RetryAfter).
func (e *OverloadError) RetryAfter() time.Duration { return e.Delay }

// Refused reports true: the limiter turned the call away before it reached
// the dependency, so it is no failure of the dependency.
func (e *OverloadError) Refused() bool { return true }

var _ RetryAfterer = (*OverloadError)(nil)

// AdaptiveLimiter caps the number of calls in flight with a limit that
// follows measured latency, so a server keeps answering fast past its
// capacity by refusing what it cannot serve instead of queueing it
// (congestion collapse). Use it around the work of a server (Acquire and
// Permit.Release, or an HTTP middleware built on them) or around calls to a
// dependency (Adaptive, Adaptive1).
//
// The controller is a gradient in the spirit of Netflix
// concurrency-limits' Gradient2. Each Permit.Release records the call's
// latency; when a window has lasted Window and holds WindowSamples
// latencies, short is their mean and the limit L becomes
//
//	long     ← long + (short − long)·2/(LongWindow+1)   (see below)
//	gradient = clamp(Tolerance · long / short, 0.5, 1)
//	target   = L · gradient + √L                         (√L: queue allowance)
//	L        ← clamp(L·(1 − Smoothing) + target·Smoothing, MinLimit, MaxLimit)
//
// So while latency stays within Tolerance of the long-term latency the
// limit grows by Smoothing·√L per window; when calls queue in the server,
// latency rises and the limit settles where short ≈ Tolerance·long, a little
// past the concurrency at which latency starts to grow (the knee), and it
// shrinks by at most half per window when latency jumps. A window whose
// peak concurrency stayed under L/2 (the callers, not the limit, bound the
// load) does not change L.
//
// The long-term latency moves toward a lower short latency in every window
// but toward a higher one only in windows that did not use the limit (peak
// concurrency ≤ L/2) or when L is at MinLimit: latency caused by the
// limiter's own queueing never becomes the baseline, so the limit does not
// creep up under a sustained overload. The price: when the dependency
// itself gets slower for good while saturated, the limit stays low (safe,
// it sheds more than needed) until load ebbs or L reaches MinLimit.
//
// Priorities: a call of priority p is admitted while the calls in flight
// are fewer than max(1, ⌊L·share(p)⌋), share 50 % for PriorityLow, 75 %
// Normal, 90 % High; PriorityCritical is always admitted, even over the
// limit (counted in perfkit.resilience.adaptive.overlimit). So under
// pressure Low is shed first, and critical is never shed. Calls that find
// no room wait in a queue of MaxQueue (higher priorities served first,
// FIFO within one) for QueueTimeout, or are refused at once with an
// *OverloadError when the queue is full or MaxQueue is 0.
//
// Why a second signal: a concurrency limit only sees the calls between
// Acquire and Release. A server whose handlers are CPU-bound on few cores
// (GOMAXPROCS=1) runs them one after the other, so hardly two are ever in
// flight, while thousands of requests wait in the run queue and socket
// buffers before their handler starts: latency grows to seconds and the
// limit never binds. With Delay set, the limiter also controls that wait,
// CoDel- and Cinnamon-style: every DelayInterval a shed level s in [0, 3]
// moves by 0.1 · clamp(delay/DelayTarget − 1, −1, 10·DelayMaxRise)
// (DelayMaxRise is 1 by default, 0.05 with CPUTime: the level moves by
// −0.1 to +1 per reading without CPUTime), and a call of
// priority Low, Normal or High is refused in a fraction clamp(s − k, 0, 1)
// of cases, k = 0, 1, 2 — so Low goes first and entirely before any
// Normal call is shed, and High last; Critical never. The fraction is
// applied by error diffusion (every 1/f-th call), not at random. At
// DelayTarget the level holds; with no delay it falls back to 0 within
// 30 readings. The gain is steep on purpose: at 2× capacity a backlog
// grows by a second of work per second, so the level must reach its
// point within a few readings (the simulation in the tests: admitted p99
// within 5× DelayTarget at 2× and 4× capacity, transient included).
// Measured on a real server it overshoots (see DelayMaxRise): the wait it
// reads lags the level by the wait itself.
//
// Which delay: the run-queue delay (SchedulerDelay) misses the requests
// still in socket buffers, which a saturated core polls only every 10 ms
// or so; the wait since a front proxy's stamp (QueueDelay) sees all of
// it, and its minimum over a reading filters bursts, so it needs no CPU
// gate. On the overload benchmark's stand-in with throttling clients,
// QueueDelay (DelayMaxRise 0.1, no CPUTime, a 1 ms target) held admitted
// p99 at 39–51 ms and probes at 36–63 ms at 2× and 4×, where
// SchedulerDelay (with CPUTime, 2 ms) held 133–375 ms, for about the same
// work served (BENCHMARKS.md, "Overload"). Its minimum reads a Go server's
// queue low, though (see QueueDelay); MaxWait then refuses the calls that
// waited longest, which reach Acquire last. In later runs of the same
// setup on a slower machine, a 5 ms MaxWait held the settled admitted p99
// at 30–38 ms against 47–127 ms without, serving about as much (three
// paired runs: as much or more in each; one scripted run: 2–3 points
// less at 2×), and 2 ms at 23–35 ms over ten runs, serving more at 4×.
// Refusing is not free (the request is read and answered): a server
// offered f× its capacity, whose refusal costs a share r of a served
// call, serves at most (1 − f·r)/(1 − r) of its capacity; when refusals
// alone fill the core (f·r ≥ 1), or something outside the process takes
// the CPU, the delay stays high whatever is shed and the level goes to 3
// (only Critical gets through).
//
// A run-queue delay is not always a shortage of CPU: arrivals come in
// bursts (a poller wakes many connections at once), and a burst of 20
// requests on one core makes the last ones wait for the first even when
// the core is busy 40 % of the time — the 90th percentile of the waits
// then passes a 2 ms target far below capacity (servio's first overload
// run shed a quarter of its low-priority calls at 38 % of a core, and at
// 4× cut its goodput to 17 % of what the limiter off served with the core
// 60 % busy). With CPUTime set, the delay moves the level only while the
// process used at least 90 % of CPUs over the last 10 readings (100 ms at
// the default DelayInterval: a burst fills the core for milliseconds, an
// overload for good), and then by at most +0.05 per reading (0 to 1 in
// 200 ms at the default interval). While the core had room over those
// readings, or stood mostly idle since the last one (the backlog is gone,
// the level is past its point), the level falls by 0.2·(0.9 − u)/0.1, at
// most 0.2, per reading (3 to 0 in 15 readings at u ≤ 80 %), u the
// window's utilisation, or the last reading's when that is under 60 % and
// lower, whatever the delay: up slowly, down faster. A last reading
// between 60 and 90 % is noise on a full core (steal time on a virtual
// machine, the reading's timing), not room: on this project's VM a
// saturated core reads under 80 % in a quarter of its 10 ms readings.
// Readings of CPUTime happen with those of Delay, not per call. In the
// tests' simulated one-core
// server with bursty arrivals (Poisson bursts of 8 on average), this
// sheds nothing at 0.4× the capacity, where the delay alone sheds most
// low and half the normal calls, and keeps goodput above 90 % of the
// refusal-cost bound at 2× and 4×.
//
// It is safe for concurrent use; admitting and releasing a call does not
// allocate (a queued call allocates its wait).
type AdaptiveLimiter struct {
	name         string
	clock        Clock
	minLimit     float64
	maxLimit     float64
	window       time.Duration
	winSamples   int
	alpha        float64
	tolerance    float64
	smoothing    float64
	maxQueue     int
	queueTimeout time.Duration

	delayFn       func() time.Duration
	delayTarget   time.Duration
	delayInterval time.Duration
	delayMaxErr   float64                          // the largest error a reading adds
	maxWaits      [prioritySlots - 1]time.Duration // the wait past which a call of each priority but critical is refused (all 0: MaxWait off)
	delayNext     atomic.Int64                     // UnixNano of the next reading
	cpuFn         func() time.Duration
	cpus          int

	cpuMu   sync.Mutex
	cpuRing [cpuWindow + 1]cpuReading // the last readings of cpuFn
	cpuNext int                       // index of the next reading in cpuRing

	mu       sync.Mutex
	limit    float64
	inflight int
	queued   int
	queues   [prioritySlots - 1][]*adaptiveWaiter // low, normal, high
	long     time.Duration                        // 0 until the first window
	winStart time.Time
	winSum   time.Duration
	winN     int
	winPeak  int
	shed     float64                    // shed level from Delay, in [0, 3]
	shedAcc  [prioritySlots - 1]float64 // error diffusion of the shed fractions

	full, timedOut, ctxCanceled, ctxDeadline [prioritySlots]*OverloadError

	// NetworkFirst: a byte in the pipe asks handOffLoop to dispatch after
	// the next network poll. Under l.mu: handOffOn while handoffs go
	// through the pipe (until Close or a pipe error), handOffPending while
	// a byte is in it.
	handOffR, handOffW *os.File
	handOffOn          bool
	handOffPending     bool
	yielded            chan struct{} // closed after the next poll: YieldToNetwork's callers wait on it
	closeOnce          sync.Once

	rejections metric.Int64Counter
	overLimit  metric.Int64Counter
	rejectOpt  [rejectReasons][prioritySlots][]metric.AddOption // by reason, priority
	overOpt    []metric.AddOption
	reg        metric.Registration
}

// cpuReading is a reading of AdaptiveConfig.CPUTime at a time.
type cpuReading struct {
	at  time.Time
	cpu time.Duration
}

type adaptiveWaiter struct {
	ready   chan struct{}
	granted bool
}

// NewAdaptiveLimiter returns a limiter configured by c. A negative field,
// MinLimit above MaxLimit, Tolerance below 1 or Smoothing above 1 is an
// error wrapping ErrInvalidConfig.
func NewAdaptiveLimiter(c AdaptiveConfig) (*AdaptiveLimiter, error) {
	if c.InitialLimit < 0 || c.MinLimit < 0 || c.MaxLimit < 0 || c.Window < 0 || c.WindowSamples < 0 ||
		c.LongWindow < 0 || c.Tolerance < 0 || c.Smoothing < 0 || c.MaxQueue < 0 || c.QueueTimeout < 0 || c.RetryAfter < 0 ||
		c.DelayTarget < 0 || c.DelayInterval < 0 || c.CPUs < 0 || c.DelayMaxRise < 0 || c.MaxWait < 0 {
		return nil, invalid("adaptive limiter config has a negative field")
	}
	if c.MaxWait > 0 && c.Delay == nil {
		return nil, invalid("adaptive limiter MaxWait needs Delay: it applies while Delay's shed level is above 0")
	}
	if c.DelayMaxRise > 1 || math.IsNaN(c.DelayMaxRise) {
		return nil, invalid("adaptive limiter DelayMaxRise %v outside (0, 1]", c.DelayMaxRise)
	}
	maxErr := float64(delayMaxErr)
	if c.CPUTime != nil {
		maxErr = cpuMaxErr
	}
	if c.DelayMaxRise > 0 {
		maxErr = c.DelayMaxRise / delayGain
	}
	if c.Name == "" {
		c.Name = "adaptive"
	}
	c.MinLimit = max(c.MinLimit, 1)
	if c.MaxLimit == 0 {
		c.MaxLimit = max(defaultAdaptiveMax, c.MinLimit)
	}
	if c.MinLimit > c.MaxLimit {
		return nil, invalid("adaptive limiter MinLimit %d above MaxLimit %d", c.MinLimit, c.MaxLimit)
	}
	if c.Tolerance == 0 {
		c.Tolerance = defaultAdaptiveTolerance
	}
	if c.Tolerance < 1 {
		return nil, invalid("adaptive limiter Tolerance %v below 1", c.Tolerance)
	}
	if c.Smoothing == 0 {
		c.Smoothing = defaultAdaptiveSmoothing
	}
	if c.Smoothing > 1 {
		return nil, invalid("adaptive limiter Smoothing %v above 1", c.Smoothing)
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = defaultAdaptiveInitial
	}
	c.InitialLimit = min(max(c.InitialLimit, c.MinLimit), c.MaxLimit)
	c.Window = cmp.Or(c.Window, defaultAdaptiveWindow)
	c.WindowSamples = cmp.Or(c.WindowSamples, defaultAdaptiveSamples)
	c.LongWindow = cmp.Or(c.LongWindow, defaultAdaptiveLong)
	c.RetryAfter = cmp.Or(c.RetryAfter, defaultAdaptiveRetryAfter)

	l := &AdaptiveLimiter{
		name: c.Name, clock: clockOr(c.Clock),
		minLimit: float64(c.MinLimit), maxLimit: float64(c.MaxLimit),
		window: c.Window, winSamples: c.WindowSamples, alpha: 2 / float64(c.LongWindow+1),
		tolerance: c.Tolerance, smoothing: c.Smoothing, maxQueue: c.MaxQueue, queueTimeout: c.QueueTimeout,
		limit:   float64(c.InitialLimit),
		delayFn: c.Delay, delayTarget: cmp.Or(c.DelayTarget, defaultDelayTarget),
		delayInterval: cmp.Or(c.DelayInterval, defaultDelayInterval), delayMaxErr: maxErr,
		cpuFn: c.CPUTime, cpus: c.CPUs,
	}
	for i := range l.maxWaits {
		l.maxWaits[i] = time.Duration(math.MaxInt64) // 2^i × MaxWait, saturated
		if c.MaxWait <= time.Duration(math.MaxInt64)>>i {
			l.maxWaits[i] = c.MaxWait << i
		}
	}
	l.winStart = l.clock.Now()
	bld := newBuilder(c.MeterProvider)
	l.rejections = bld.counter("perfkit.resilience.adaptive.rejections", "{rejection}", "Calls refused by an adaptive limiter, by priority and reason (shed, late, full, queued).")
	l.overLimit = bld.counter("perfkit.resilience.adaptive.overlimit", "{request}", "Critical calls admitted over an adaptive limiter's limit.")
	pol := attribute.String(attrPolicy, c.Name)
	l.overOpt = addOpts(pol)
	for i := range prioritySlots {
		p := Priority(i) + PriorityLow
		for r, name := range rejectReasonNames {
			l.rejectOpt[r][i] = addOpts(pol, attribute.String("resilience.priority", p.String()), attribute.String("resilience.reason", name))
		}
		l.full[i] = &OverloadError{Name: c.Name, Priority: p, Delay: c.RetryAfter}
		l.timedOut[i] = &OverloadError{Name: c.Name, Priority: p, Delay: c.RetryAfter, Queued: true}
		l.ctxCanceled[i] = &OverloadError{Name: c.Name, Priority: p, Delay: c.RetryAfter, Queued: true, Err: context.Canceled}
		l.ctxDeadline[i] = &OverloadError{Name: c.Name, Priority: p, Delay: c.RetryAfter, Queued: true, Err: context.DeadlineExceeded}
	}
	limitG, err := bld.m.Int64ObservableGauge("perfkit.resilience.adaptive.limit",
		metric.WithDescription("Current concurrency limit of an adaptive limiter."), metric.WithUnit("{request}"))
	if err != nil {
		bld.errs = append(bld.errs, err)
	}
	inflightG, err := bld.m.Int64ObservableGauge("perfkit.resilience.adaptive.inflight",
		metric.WithDescription("Calls in flight through an adaptive limiter."), metric.WithUnit("{request}"))
	if err != nil {
		bld.errs = append(bld.errs, err)
	}
	shedG, err := bld.m.Float64ObservableGauge("perfkit.resilience.adaptive.shed_level",
		metric.WithDescription("Shed level of an adaptive limiter driven by its Delay signal: 0 none, 1 all low-priority calls, 2 all normal, 3 all high."),
		metric.WithUnit("{level}"))
	if err != nil {
		bld.errs = append(bld.errs, err)
	}
	if limitG != nil && inflightG != nil && shedG != nil {
		obsOpt := metric.WithAttributeSet(attribute.NewSet(pol))
		l.reg, err = bld.m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			l.mu.Lock()
			lim, in, shed := int64(l.limit), int64(l.inflight), l.shed
			l.mu.Unlock()
			o.ObserveInt64(limitG, lim, obsOpt)
			o.ObserveInt64(inflightG, in, obsOpt)
			o.ObserveFloat64(shedG, shed, obsOpt)
			return nil
		}, limitG, inflightG, shedG)
		if err != nil {
			bld.errs = append(bld.errs, err)
		}
	}
	if err := bld.err(); err != nil {
		return l, err
	}
	if c.NetworkFirst {
		r, w, err := os.Pipe()
		if err != nil {
			_ = l.Close() // the gauges registered above
			return nil, err
		}
		l.handOffR, l.handOffW, l.handOffOn = r, w, true
		go l.handOffLoop()
	}
	return l, nil
}

// Close stops reporting the limiter's gauges to the MeterProvider and,
// with NetworkFirst, stops its goroutine: calls still queued then get
// their slot as soon as one frees, without waiting for a network poll.
// The limiter keeps working.
func (l *AdaptiveLimiter) Close() error {
	var err error
	l.closeOnce.Do(func() {
		if l.handOffW != nil {
			l.directHandOff()
			err = l.handOffW.Close() // handOffLoop reads EOF and returns
		}
		if l.reg != nil {
			err = errors.Join(err, l.reg.Unregister())
		}
	})
	return err
}

// handOff gives the slots free to queued calls: at once, or with
// NetworkFirst after the next network poll, when it reports that a byte
// must be written to the pipe once l.mu is released (kick). l.mu held.
func (l *AdaptiveLimiter) handOff() (kick bool) {
	if !l.handOffOn {
		l.dispatch()
		return false
	}
	if l.queued == 0 || l.handOffPending {
		return false
	}
	l.handOffPending = true
	return true
}

// kick writes the byte that wakes handOffLoop at the next network poll
// when handOff asked for it. If the write fails (Close closed the pipe,
// or anything else), handoffs go direct from then on.
func (l *AdaptiveLimiter) kick(do bool) {
	if !do {
		return
	}
	if _, err := l.handOffW.Write(handOffByte[:]); err != nil {
		l.directHandOff()
	}
}

// directHandOff ends NetworkFirst's handoffs: the slots free go to queued
// calls now, and later ones at once.
func (l *AdaptiveLimiter) directHandOff() {
	l.mu.Lock()
	l.handOffOn, l.handOffPending = false, false
	l.dispatch()
	l.resumeYielded()
	l.mu.Unlock()
}

// resumeYielded lets the callers of YieldToNetwork waiting for this poll
// go on. l.mu held.
func (l *AdaptiveLimiter) resumeYielded() {
	if l.yielded != nil {
		close(l.yielded)
		l.yielded = nil
	}
}

// YieldToNetwork, with NetworkFirst, blocks until the Go runtime has
// polled the network and the goroutines that poll woke — new requests, on
// a server — have had their turn (and reached Acquire, to queue or be
// refused); the poll is one after the call, but for a call made just as
// the limiter's goroutine wakes from a poll, which then counts. Without
// NetworkFirst, or once Close has run or the limiter's pipe failed, it
// returns at once. An admitted call keeps its slot meanwhile.
//
// A handler that runs long on the CPU without blocking holds the P, and
// so the reading of new requests, for as long: on one P their refusals
// wait for it. A handler that blocks on the network (a query to a
// database server) lets the runtime poll there; one that does not (an
// embedded database such as SQLite, a large encode, a computation) can
// call YieldToNetwork between its phases instead, so that no stretch of
// its work is longer than the refusals can wait. It costs a byte written
// to a pipe and read back, a network poll, the limiter goroutine's turn
// and the switches between them — 7.1–8.5 µs and one allocation on one
// idle P here (BenchmarkAdaptiveYieldToNetwork) — and, on a P with other
// work to run, the time to run it; more than a short query to an
// embedded database, so yield around work that runs for longer.
func (l *AdaptiveLimiter) YieldToNetwork() {
	if l.handOffR == nil {
		return
	}
	l.mu.Lock()
	if !l.handOffOn {
		l.mu.Unlock()
		return
	}
	if l.yielded == nil {
		l.yielded = make(chan struct{})
	}
	ch := l.yielded
	kick := !l.handOffPending
	l.handOffPending = true
	l.mu.Unlock()
	l.kick(kick)
	<-ch
}

// handOffByte is what kick writes (an array: no allocation per write).
var handOffByte [1]byte

// yieldTwice lets the goroutines runnable on this P run first. One
// runtime.Gosched is not enough: every 61st turn the scheduler takes from
// its global queue first, where Gosched just put the caller, and the
// caller would run again at once; the next turn is never such a one.
func yieldTwice() {
	runtime.Gosched()
	runtime.Gosched()
}

// handOffLoop (NetworkFirst) dispatches after each network poll that
// found a byte in the pipe, once the goroutines that poll woke — new
// requests, on a server — have had their turn.
func (l *AdaptiveLimiter) handOffLoop() {
	defer l.handOffR.Close()
	var b [64]byte
	for {
		if _, err := l.handOffR.Read(b[:]); err != nil {
			l.directHandOff() // EOF after Close, or a pipe that failed
			return
		}
		// The callers of YieldToNetwork that asked before this poll go on
		// after its goroutines' turn; those that ask during it wait for
		// the next one, asked for below.
		l.mu.Lock()
		yielded := l.yielded
		l.yielded = nil
		l.mu.Unlock()
		yieldTwice()
		l.mu.Lock()
		l.handOffPending = l.yielded != nil
		again := l.handOffPending
		l.dispatch()
		l.mu.Unlock()
		if yielded != nil {
			close(yielded)
		}
		l.kick(again)
	}
}

// Name returns the limiter's name.
func (l *AdaptiveLimiter) Name() string { return l.name }

// Limit returns the current concurrency limit.
func (l *AdaptiveLimiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// InFlight returns the number of calls admitted and not yet released.
func (l *AdaptiveLimiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// Queued returns the number of calls waiting for a slot.
func (l *AdaptiveLimiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

// Permit is an admission by an AdaptiveLimiter. Release it exactly once
// when the call ends; the zero Permit's Release does nothing.
type Permit struct {
	l     *AdaptiveLimiter
	start time.Time
}

// Release frees the permit's slot and feeds the call's latency to the
// controller. err is the call's outcome: context.Canceled and errors with
// Refused() true (the call did not run to its end) free the slot without a
// latency sample; any other outcome, failures included, is a sample (a
// timeout is a long latency, a sign of overload). Releasing a permit twice
// panics when it would leave fewer than zero calls in flight, and otherwise
// corrupts the count.
func (p Permit) Release(err error) {
	l := p.l
	if l == nil {
		return
	}
	sample := err == nil || !(errors.Is(err, context.Canceled) || isRefused(err))
	now := l.clock.Now()
	l.mu.Lock()
	if l.inflight == 0 {
		l.mu.Unlock()
		panic("resilience: AdaptiveLimiter Permit released twice")
	}
	l.inflight--
	if sample {
		l.winSum += now.Sub(p.start)
		l.winN++
		if l.winN >= l.winSamples && now.Sub(l.winStart) >= l.window {
			l.update(now)
		}
	}
	k := l.handOff()
	l.mu.Unlock()
	l.kick(k)
}

// update closes the window (see AdaptiveLimiter for the rule). l.mu held.
func (l *AdaptiveLimiter) update(now time.Time) {
	short := l.winSum / time.Duration(l.winN)
	peak := l.winPeak
	l.winStart, l.winSum, l.winN, l.winPeak = now, 0, 0, l.inflight
	if short <= 0 {
		short = 1
	}
	appLimited := float64(peak) <= l.limit/2
	switch {
	case l.long == 0:
		l.long = short
	case short < l.long || appLimited || l.limit <= l.minLimit:
		l.long += time.Duration(l.alpha * float64(short-l.long))
	}
	if appLimited {
		return
	}
	gradient := min(max(l.tolerance*float64(l.long)/float64(short), 0.5), 1)
	target := l.limit*gradient + math.Sqrt(l.limit)
	l.limit = min(max(l.limit*(1-l.smoothing)+target*l.smoothing, l.minLimit), l.maxLimit)
}

// room is the number of calls in flight under which a call of priority
// index i is admitted. l.mu held.
func (l *AdaptiveLimiter) room(i int) int {
	return max(1, int(l.limit*priorityShare[i]))
}

func (l *AdaptiveLimiter) admitLocked() {
	l.inflight++
	l.winPeak = max(l.winPeak, l.inflight)
}

// dispatch admits queued calls while there is room, highest priority
// first. l.mu held.
func (l *AdaptiveLimiter) dispatch() {
	for i := len(l.queues) - 1; i >= 0 && l.queued > 0; {
		q := l.queues[i]
		if len(q) == 0 {
			i--
			continue
		}
		if l.inflight >= l.room(i) {
			return // lower priorities have less room
		}
		w := q[0]
		q[0] = nil
		l.queues[i] = q[1:]
		l.queued--
		l.admitLocked()
		w.granted = true
		close(w.ready)
	}
}

// Acquire admits a call of priority p or refuses it with an
// *OverloadError (see AdaptiveLimiter): at once when the Delay signal
// sheds its priority or there is no room and the queue is full, or after
// waiting QueueTimeout or until ctx is done (the error then wraps ctx's
// error). When a reading of Delay is due, this call takes it. The caller must Release the permit
// exactly once when the call ends. Admission without a wait does not
// allocate.
func (l *AdaptiveLimiter) Acquire(ctx context.Context, p Priority) (Permit, error) {
	i := p.index()
	now := l.clock.Now()
	if l.delayFn != nil && now.UnixNano() >= l.delayNext.Load() {
		l.readDelay(now)
	}
	critical := p >= PriorityCritical
	waited := time.Duration(-1) // unknown
	if l.maxWaits[0] > 0 && !critical {
		if t, ok := Arrival(ctx); ok {
			waited = now.Sub(t)
		}
	}
	l.mu.Lock()
	// A call too old is refused before the level's share is drawn: the
	// share (error diffusion) counts the calls it considers.
	if !critical && l.shed > 0 && waited > l.maxWaits[min(i, len(l.maxWaits)-1)] {
		l.mu.Unlock()
		l.rejections.Add(ctx, 1, l.rejectOpt[rejectLate][i]...)
		return Permit{}, l.full[i]
	}
	if !critical && l.shed > float64(i) && l.shedByDelay(i) {
		l.mu.Unlock()
		l.rejections.Add(ctx, 1, l.rejectOpt[rejectShed][i]...)
		return Permit{}, l.full[i]
	}
	if critical || (l.inflight < l.room(i) && !l.waitingFrom(i)) {
		l.admitLocked()
		over := float64(l.inflight) > l.limit
		l.mu.Unlock()
		if over {
			l.overLimit.Add(ctx, 1, l.overOpt...)
		}
		if l.handOffR != nil && !critical {
			// NetworkFirst: the goroutines already runnable — requests
			// read or about to be — reach Acquire before this call's work
			// starts, and queue behind it or are refused. The call's
			// latency starts when its work does.
			yieldTwice()
			now = l.clock.Now()
		}
		return Permit{l: l, start: now}, nil
	}
	if l.queued >= l.maxQueue {
		l.mu.Unlock()
		l.rejections.Add(ctx, 1, l.rejectOpt[rejectFull][i]...)
		return Permit{}, l.full[i]
	}
	w := &adaptiveWaiter{ready: make(chan struct{})}
	l.queues[i] = append(l.queues[i], w)
	l.queued++
	l.mu.Unlock()
	return l.wait(ctx, i, w)
}

// waitingFrom reports whether a call of priority index i or higher is
// queued: a new call does not pass it (with NetworkFirst, a freed slot
// stays free until the next network poll). l.mu held.
func (l *AdaptiveLimiter) waitingFrom(i int) bool {
	for ; i < len(l.queues); i++ {
		if len(l.queues[i]) > 0 {
			return true
		}
	}
	return false
}

// readDelay reads Delay if no other call took this interval's reading,
// and moves the shed level (see AdaptiveLimiter).
func (l *AdaptiveLimiter) readDelay(now time.Time) {
	next := l.delayNext.Load()
	if now.UnixNano() < next || !l.delayNext.CompareAndSwap(next, now.Add(l.delayInterval).UnixNano()) {
		return
	}
	e := min(max(float64(l.delayFn())/float64(l.delayTarget)-1, -1), l.delayMaxErr)
	if l.cpuFn != nil {
		long, last := l.cpuUtil(now)
		u := long
		if last < cpuIdle {
			u = min(u, last)
		}
		if u < cpuBusy {
			// The core had room over the window (whatever delays calls,
			// it is not overload) or stood mostly idle since the last
			// reading (the backlog is gone: the level is past its point).
			// The level falls, the faster the more room. A single reading
			// between cpuIdle and cpuBusy is noise on a full core (steal
			// time, interrupts, the reading's timing), not room: it must
			// not undo the window's verdict.
			e = max((u-cpuBusy)/(1-cpuBusy), -1) * cpuFall
		}
	}
	l.mu.Lock()
	l.shed = min(max(l.shed+delayGain*e, 0), float64(len(l.shedAcc)))
	l.mu.Unlock()
}

// cpuUtil records a reading of CPUTime and returns the share of its CPUs
// the process used since the oldest of the last cpuWindow readings, and
// since the previous reading (0 without one).
func (l *AdaptiveLimiter) cpuUtil(now time.Time) (long, last float64) {
	cpu := l.cpuFn()
	cpus := float64(l.cpus)
	if cpus == 0 {
		cpus = float64(runtime.GOMAXPROCS(0))
	}
	l.cpuMu.Lock()
	defer l.cpuMu.Unlock()
	n := len(l.cpuRing)
	prev := l.cpuRing[(l.cpuNext+n-1)%n]
	l.cpuRing[l.cpuNext] = cpuReading{at: now, cpu: cpu}
	l.cpuNext = (l.cpuNext + 1) % n
	oldest := l.cpuRing[l.cpuNext] // the slot the next reading overwrites
	if oldest.at.IsZero() {        // fewer than cpuWindow+1 readings yet
		oldest = l.cpuRing[0]
	}
	util := func(r cpuReading) float64 {
		if r.at.IsZero() || !now.After(r.at) {
			return 0
		}
		return float64(cpu-r.cpu) / (cpus * float64(now.Sub(r.at)))
	}
	return util(oldest), util(prev)
}

// shedByDelay reports whether the next call of priority index i is one of
// the fraction clamp(shed − i, 0, 1) refused. l.mu held.
func (l *AdaptiveLimiter) shedByDelay(i int) bool {
	l.shedAcc[i] += min(l.shed-float64(i), 1)
	if l.shedAcc[i] < 1 {
		return false
	}
	l.shedAcc[i]--
	return true
}

// ShedLevel returns the shed level driven by Delay, in [0, 3]: below 1 a
// share of low-priority calls is refused, from 1 to 2 all low and a share
// of normal ones, above 2 a share of high ones too. 0 without Delay.
func (l *AdaptiveLimiter) ShedLevel() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shed
}

func (l *AdaptiveLimiter) wait(ctx context.Context, i int, w *adaptiveWaiter) (Permit, error) {
	var timeout <-chan time.Time
	if l.queueTimeout > 0 {
		t := l.clock.NewTimer(l.queueTimeout)
		defer t.Stop()
		timeout = t.C()
	}
	var rej *OverloadError
	select {
	case <-w.ready:
		return Permit{l: l, start: l.clock.Now()}, nil
	case <-ctx.Done():
		rej = l.ctxDeadline[i]
		if ctx.Err() == context.Canceled {
			rej = l.ctxCanceled[i]
		}
	case <-timeout:
		rej = l.timedOut[i]
	}
	l.mu.Lock()
	var k bool
	if w.granted {
		// A slot was handed over as the wait ended. A timed-out call takes
		// it; a call whose context is done gives it back.
		if rej == l.timedOut[i] {
			l.mu.Unlock()
			return Permit{l: l, start: l.clock.Now()}, nil
		}
		l.inflight--
		k = l.handOff()
	} else {
		q := l.queues[i]
		for j, x := range q {
			if x == w {
				l.queues[i] = append(q[:j], q[j+1:]...)
				break
			}
		}
		l.queued--
	}
	l.mu.Unlock()
	l.kick(k)
	l.rejections.Add(ctx, 1, l.rejectOpt[rejectQueued][i]...)
	return Permit{}, rej
}

// Adaptive returns fn limited by l at the priority PriorityFrom(ctx) (set
// it with WithPriority): a refused call returns an *OverloadError without
// calling fn. The returned func is safe for concurrent use and does not
// allocate when the call is admitted at once.
func Adaptive[T any](l *AdaptiveLimiter, fn func(context.Context) (T, error)) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return adaptiveDo(ctx, l, fn) }
}

// Adaptive1 is Adaptive for functions that take an argument.
func Adaptive1[A, T any](l *AdaptiveLimiter, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	return func(ctx context.Context, a A) (T, error) {
		return adaptiveDo(ctx, l, func(ctx context.Context) (T, error) { return fn(ctx, a) })
	}
}

func adaptiveDo[T any](ctx context.Context, l *AdaptiveLimiter, fn func(context.Context) (T, error)) (v T, err error) {
	pm, err := l.Acquire(ctx, PriorityFrom(ctx))
	if err != nil {
		return v, err
	}
	defer func() { pm.Release(err) }() // also when fn panics
	return fn(ctx)
}
