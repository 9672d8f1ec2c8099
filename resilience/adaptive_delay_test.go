package resilience

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// setClock is a clock a simulation sets; its timers never fire (the
// simulated limiters have no queue).
type setClock struct{ now time.Time }

func (c *setClock) Now() time.Time               { return c.now }
func (c *setClock) NewTimer(time.Duration) Timer { return neverTimer{} }
func (neverTimer) C() <-chan time.Time           { return nil }
func (neverTimer) Stop() bool                    { return true }
func (c *setClock) set(t time.Time)              { c.now = t }

type neverTimer struct{}

// cpuServer simulates a server on one core whose handlers never block: a
// FIFO run queue in front of the limiter. Requests arrive evenly at rate
// per second; each waits until the core is free, then calls Acquire (so
// the limiter only sees it after its wait, and hardly ever two in flight);
// an admitted one takes cost of CPU, a refused one rejectCost (reading
// and answering a request is not free). Delay reports the p90 of the
// waits since its last call, as SchedulerDelay does for a real server.
type cpuServer struct {
	l          *AdaptiveLimiter
	clock      *setClock
	cost       time.Duration
	rejectCost time.Duration
	// shares of low, normal, high; critical probes come at 20/s on top.
	shares [3]float64

	free  time.Time       // when the core is next free
	waits []time.Duration // since the last Delay reading
	busy  time.Duration   // CPU time used so far (CPUTime)

	// measured
	admitted, offered, shedBy [prioritySlots]int
	latencies                 []time.Duration // admitted, arrival to end
	probeLatencies            []time.Duration
}

func newCPUServer(t *testing.T, cfg AdaptiveConfig, cost, rejectCost time.Duration) *cpuServer {
	s := &cpuServer{clock: &setClock{now: time.Unix(1e9, 0)}, cost: cost, rejectCost: rejectCost, shares: [3]float64{0.05, 0.8, 0.15}}
	s.free = s.clock.now
	cfg.Clock = s.clock
	cfg.Delay = s.delay
	if cfg.CPUTime != nil { // any non-nil: the simulated core's CPU time
		cfg.CPUTime, cfg.CPUs = func() time.Duration { return s.busy }, 1
	}
	l, err := NewAdaptiveLimiter(cfg)
	require.NoError(t, err)
	s.l = l
	return s
}

func (s *cpuServer) delay() time.Duration {
	if len(s.waits) == 0 {
		return 0
	}
	slices.Sort(s.waits)
	d := s.waits[len(s.waits)*9/10]
	s.waits = s.waits[:0]
	return d
}

func (s *cpuServer) reset() {
	s.admitted, s.offered, s.shedBy = [prioritySlots]int{}, [prioritySlots]int{}, [prioritySlots]int{}
	s.latencies, s.probeLatencies = s.latencies[:0], s.probeLatencies[:0]
}

// run offers rate req/s for d, starting when the last run's arrivals
// ended.
func (s *cpuServer) run(rate float64, d time.Duration) {
	ctx := context.Background()
	gap := time.Duration(float64(time.Second) / rate)
	probeGap := 50 * time.Millisecond
	start := s.clock.now
	if s.free.After(start) {
		start = s.free
	}
	nextProbe := start
	n := int(d / gap)
	for k := range n {
		arrive := start.Add(time.Duration(k) * gap)
		p := Priority(k * 7919 % 1000) // spread the classes evenly
		switch x := float64(p) / 1000; {
		case x < s.shares[0]:
			p = PriorityLow
		case x < s.shares[0]+s.shares[1]:
			p = PriorityNormal
		default:
			p = PriorityHigh
		}
		if !nextProbe.After(arrive) {
			s.serve(ctx, nextProbe, PriorityCritical)
			nextProbe = nextProbe.Add(probeGap)
		}
		s.serve(ctx, arrive, p)
	}
}

// runBursty offers rate req/s for d in bursts: bursts arrive as a Poisson
// process (seeded, so a run is reproducible), each of a geometric number
// of requests with mean burst, all at once — as when a poller wakes many
// connections together. Critical probes come every 50 ms.
func (s *cpuServer) runBursty(rate float64, d time.Duration, burst float64, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	start := s.clock.now
	if s.free.After(start) {
		start = s.free
	}
	end := start.Add(d)
	nextProbe := start
	k := 0
	for at := start; ; {
		at = at.Add(time.Duration(rng.ExpFloat64() * burst / rate * float64(time.Second)))
		if !at.Before(end) {
			break
		}
		for n := 1; ; n++ {
			for !nextProbe.After(at) {
				s.serve(ctx, nextProbe, PriorityCritical)
				nextProbe = nextProbe.Add(50 * time.Millisecond)
			}
			x := float64(k*7919%1000) / 1000
			k++
			p := PriorityHigh
			switch {
			case x < s.shares[0]:
				p = PriorityLow
			case x < s.shares[0]+s.shares[1]:
				p = PriorityNormal
			}
			s.serve(ctx, at, p)
			if rng.Float64() < 1/burst { // geometric, mean burst
				break
			}
		}
	}
	if s.free.After(end) {
		end = s.free
	}
	s.clock.set(end)
}

func (s *cpuServer) serve(ctx context.Context, arrive time.Time, p Priority) {
	begin := arrive
	if s.free.After(begin) {
		begin = s.free
	}
	s.waits = append(s.waits, begin.Sub(arrive))
	s.clock.set(begin)
	i := p.index()
	s.offered[i]++
	pm, err := s.l.Acquire(ctx, p)
	if err != nil {
		s.shedBy[i]++
		s.free = begin.Add(s.rejectCost)
		s.busy += s.rejectCost
		return
	}
	s.free = begin.Add(s.cost)
	s.busy += s.cost
	s.clock.set(s.free)
	pm.Release(nil)
	s.admitted[i]++
	if p == PriorityCritical {
		s.probeLatencies = append(s.probeLatencies, s.free.Sub(arrive))
	} else {
		s.latencies = append(s.latencies, s.free.Sub(arrive))
	}
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// TestAdaptiveDelayShedsCPUOverload drives a simulated one-core server
// (0.25 ms a request, 4,000 req/s capacity; a refusal costs an eighth of
// a request) at 1×, 2× and 4× its capacity. The concurrency limit alone
// never binds there; with Delay the limiter must keep the admitted p99,
// the transient included, within 5× DelayTarget (a real server's
// unloaded p99 is about DelayTarget; here it is one request), the goodput within 90 % of the best a
// server can do when every refusal costs CPU ((1 − f·r)/(1 − r) of the
// capacity at f× for refusal cost r), never shed a probe, shed low
// before normal before high, and stop shedding once the load is back to
// normal.
func TestAdaptiveDelayShedsCPUOverload(t *testing.T) {
	t.Parallel()
	const cost, capacity = 250 * time.Microsecond, 4000.0
	rejectCost := cost / 8
	r := float64(rejectCost) / float64(cost)
	s := newCPUServer(t, AdaptiveConfig{MinLimit: 100, InitialLimit: 100}, cost, rejectCost)

	s.run(capacity/4, time.Second)
	unloaded := p99(s.latencies)
	require.LessOrEqual(t, unloaded, 2*cost, "unloaded, a request waits for a probe at most")

	for _, f := range []float64{1, 2, 4} {
		s.reset()
		s.run(f*capacity, 4*time.Second) // includes the transient
		var good int
		for i := range prioritySlots - 1 {
			good += s.admitted[i]
		}
		goodput := float64(good) / 4
		best := capacity * min(1, (1-f*r)/(1-r))
		share := func(i int) float64 { return float64(s.shedBy[i]) / float64(max(1, s.offered[i])) }
		t.Logf("%g×: goodput %.0f req/s (best %.0f), p99 %v (unloaded %v), probes p99 %v, shed low %.2f normal %.2f high %.2f, level %.2f",
			f, goodput, best, p99(s.latencies), unloaded, p99(s.probeLatencies), share(0), share(1), share(2), s.l.ShedLevel())
		assert.Zero(t, s.shedBy[PriorityCritical.index()], "%g×: probes are never shed", f)
		assert.LessOrEqual(t, p99(s.latencies), 5*defaultDelayTarget, "%g×: admitted p99 within 5× DelayTarget", f)
		assert.Less(t, p99(s.probeLatencies), 100*time.Millisecond, "%g×: probes", f)
		if f == 1 {
			assert.Zero(t, s.shedBy[PriorityNormal.index()]+s.shedBy[PriorityHigh.index()], "at capacity only low calls may be shed")
		}
		if f > 1 {
			assert.GreaterOrEqual(t, goodput, 0.9*best, "%g×: goodput near the best possible", f)
			assert.GreaterOrEqual(t, share(0), share(1), "%g×: low shed before normal", f)
			assert.GreaterOrEqual(t, share(1), share(2), "%g×: normal shed before high", f)
		}
	}
	s.reset()
	s.run(capacity/2, 2*time.Second)
	s.reset()
	s.run(capacity/2, time.Second)
	assert.Zero(t, s.shedBy[PriorityLow.index()]+s.shedBy[PriorityNormal.index()], "back under capacity, nothing is shed")
	assert.Zero(t, s.l.ShedLevel(), "the shed level is back to 0")
	assert.False(t, math.IsNaN(s.l.ShedLevel()))
}

func TestHistDeltaQuantile(t *testing.T) {
	t.Parallel()
	buckets := []float64{0, 0.001, 0.002, 0.004, math.Inf(1)}
	prev := []uint64{5, 5, 5, 5}
	assert.Equal(t, time.Duration(0), histDeltaQuantile([]uint64{5, 5, 5, 5}, prev, buckets, 0.9), "nothing new")
	// 10 new waits: 8 under 1 ms, 1 under 2 ms, 1 under 4 ms: the 90th
	// percentile is the 10th value, in the 2–4 ms bucket.
	assert.Equal(t, 4*time.Millisecond, histDeltaQuantile([]uint64{13, 6, 6, 5}, prev, buckets, 0.9))
	assert.Equal(t, []uint64{13, 6, 6, 5}, prev, "prev becomes the current counts")
	assert.Equal(t, 4*time.Millisecond, histDeltaQuantile([]uint64{13, 6, 6, 7}, prev, buckets, 0.9), "an infinite bucket reports its lower bound")
}

// TestSchedulerDelayRises checks the runtime signal: goroutines that
// queue behind busy ones on one P show a delay. The runtime records the
// wait of one goroutine in eight, so 100 of them leave about a dozen
// samples; a round that still shows none is retried.
func TestSchedulerDelayRises(t *testing.T) {
	delay := SchedulerDelay()
	delay() // the baseline
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var got time.Duration
	for round := 0; round < 5 && got == 0; round++ {
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				for end := time.Now().Add(time.Millisecond); time.Now().Before(end); {
				}
			})
		}
		wg.Wait()
		got = delay()
	}
	assert.Greater(t, got, time.Duration(0), "100 goroutines of 1 ms on one P wait for each other")
}

// TestAdaptiveDelayAdmitDoesNotAllocate: reading Delay and shedding by it
// keep Acquire free of allocations.
func TestAdaptiveDelayAdmitDoesNotAllocate(t *testing.T) {
	clock := &setClock{now: time.Unix(1e9, 0)}
	d := 10 * time.Millisecond
	start := clock.now
	l, err := NewAdaptiveLimiter(AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return d },
		CPUTime: func() time.Duration { return clock.now.Sub(start) }, CPUs: 1}) // one core, always busy
	require.NoError(t, err)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		clock.set(clock.now.Add(time.Millisecond))
		if pm, err := l.Acquire(ctx, PriorityNormal); err == nil {
			pm.Release(nil)
		}
	})
	assert.Zero(t, allocs)
	assert.Positive(t, l.ShedLevel(), "a delay 5× the target raised the level")
}

func TestAdaptiveShedLevelGauge(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	clock := &setClock{now: time.Unix(1e9, 0)}
	l := newTestAdaptive(t, AdaptiveConfig{Name: "api", Clock: clock, Delay: func() time.Duration { return 6 * time.Millisecond },
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	_, _ = l.Acquire(context.Background(), PriorityCritical) // one reading: 0.1 · (6/2 − 1)
	var level float64
	eachMetric(t, reader, func(m metricdata.Metrics) {
		if g, ok := m.Data.(metricdata.Gauge[float64]); ok && m.Name == "perfkit.resilience.adaptive.shed_level" {
			level = g.DataPoints[0].Value
		}
	})
	assert.InDelta(t, 0.2, level, 1e-9)
	assert.InDelta(t, 0.2, l.ShedLevel(), 1e-9)
}

// TestAdaptiveCPUGateBurstyArrivals drives the simulated one-core server
// (0.25 ms a request, 4,000 req/s; a refusal costs an eighth) with bursty
// arrivals — Poisson bursts of 8 requests on average, all at once, seeded
// — the case that made the delay alone shed far below capacity: within a
// burst the last requests wait for the first, so the p90 run-queue delay
// passes 2 ms on a core busy 40 % of the time. With CPUTime the limiter
// must shed nothing at 0.4× the capacity (the delay alone sheds, which
// the test checks too, so it shows what the gate fixes); at 2× and 4×
// keep goodput ≥ 90 % of the refusal-cost bound (1 − f·r)/(1 − r), the
// admitted p99 bounded, probes never shed and low shed at least as much
// as normal, normal as high; and back at 0.4× shed nothing again.
func TestAdaptiveCPUGateBurstyArrivals(t *testing.T) {
	t.Parallel()
	const cost, capacity, burst, seed = 250 * time.Microsecond, 4000.0, 8, 42
	rejectCost := cost / 8
	r := float64(rejectCost) / float64(cost)
	shedAt := func(s *cpuServer, f float64, d time.Duration, seed uint64) (goodput float64) {
		s.reset()
		s.runBursty(f*capacity, d, burst, seed)
		var good int
		for i := range prioritySlots - 1 {
			good += s.admitted[i]
		}
		return float64(good) / d.Seconds()
	}
	nonCritical := func(s *cpuServer) int {
		return s.shedBy[PriorityLow.index()] + s.shedBy[PriorityNormal.index()] + s.shedBy[PriorityHigh.index()]
	}

	alone := newCPUServer(t, AdaptiveConfig{MinLimit: 100, InitialLimit: 100}, cost, rejectCost)
	shedAt(alone, 0.4, 4*time.Second, seed)
	t.Logf("delay alone at 0.4×: %d of %d shed", nonCritical(alone), len(alone.latencies)+nonCritical(alone))
	require.Positive(t, nonCritical(alone), "the delay alone sheds below capacity on bursts (what the gate is for)")

	s := newCPUServer(t, AdaptiveConfig{MinLimit: 100, InitialLimit: 100, CPUTime: func() time.Duration { return 0 }}, cost, rejectCost)
	shedAt(s, 0.4, 4*time.Second, seed)
	assert.Zero(t, nonCritical(s), "gated: nothing shed at 0.4× with bursty arrivals")
	unloaded := p99(s.latencies)

	for _, f := range []float64{2, 4} {
		goodput := shedAt(s, f, 4*time.Second, seed+uint64(f))
		best := capacity * (1 - f*r) / (1 - r)
		share := func(i int) float64 { return float64(s.shedBy[i]) / float64(max(1, s.offered[i])) }
		t.Logf("%g×: goodput %.0f req/s (bound %.0f, %.0f %%), p99 %v (0.4×: %v), probes p99 %v, shed low %.2f normal %.2f high %.2f",
			f, goodput, best, 100*goodput/best, p99(s.latencies), unloaded, p99(s.probeLatencies), share(0), share(1), share(2))
		assert.GreaterOrEqual(t, goodput, 0.9*best, "%g×: goodput ≥ 90 %% of the refusal-cost bound", f)
		// The gate waits for 100 ms of a full core and the level then rises
		// by 0.05 per 10 ms: the transient's backlog is a few hundred ms of
		// work at most, which bounds the p99 (without shedding it grows
		// by (f − 1) seconds per second, to seconds within the step).
		// Seeds 1–3 and 42 measured 150–212 ms (goodput 92–96 % of the
		// bound).
		assert.Less(t, p99(s.latencies), 300*time.Millisecond, "%g×: admitted p99 bounded", f)
		assert.Zero(t, s.shedBy[PriorityCritical.index()], "%g×: probes are never shed", f)
		assert.Less(t, p99(s.probeLatencies), 300*time.Millisecond, "%g×: probes", f)
		assert.GreaterOrEqual(t, share(0), share(1), "%g×: low shed before normal", f)
		assert.GreaterOrEqual(t, share(1), share(2), "%g×: normal shed before high", f)
	}
	shedAt(s, 0.4, time.Second, seed+10) // recovery
	shedAt(s, 0.4, 2*time.Second, seed+11)
	assert.Zero(t, nonCritical(s), "back at 0.4×, nothing is shed")
	assert.Zero(t, s.l.ShedLevel(), "the level is back to 0")
}

// TestAdaptiveCPUGate: with CPUTime, a delay far above the target moves
// the level only while the process uses ≥ 90 % of its CPUs, by at most
// 0.05 per reading, and the level falls fast once the CPU has room.
func TestAdaptiveCPUGate(t *testing.T) {
	t.Parallel()
	clock := &setClock{now: time.Unix(1e9, 0)}
	var cpu time.Duration
	busy := 0.5 // share of the 2 CPUs used
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return 50 * time.Millisecond },
		CPUTime: func() time.Duration { return cpu }, CPUs: 2})
	read := func(n int) {
		for range n {
			clock.set(clock.now.Add(10 * time.Millisecond))
			cpu += time.Duration(busy * 2 * float64(10*time.Millisecond))
			_, _ = l.Acquire(context.Background(), PriorityCritical)
		}
	}
	read(50)
	assert.Zero(t, l.ShedLevel(), "half the CPUs busy: a delay 25× the target sheds nothing")
	busy = 1
	read(7) // the window's utilisation: (7·1 + 3·0.5)/10 = 0.85
	assert.Zero(t, l.ShedLevel(), "the window still holds the half-busy readings")
	read(5)
	lvl := l.ShedLevel()
	assert.Greater(t, lvl, 0.0, "a full CPU for 100 ms: the level rises")
	assert.LessOrEqual(t, lvl, 0.05*5+1e-9, "by at most 0.05 per reading")
	read(70)
	assert.InDelta(t, 3, l.ShedLevel(), 1e-9, "sustained: up to 3")
	busy = 0.5
	read(16)
	assert.Zero(t, l.ShedLevel(), "the core has room: from 3 to 0 within 16 readings (0.2 a reading)")
}

// TestAdaptiveCPUGateNoisyReadings: a saturated core on a virtual machine
// does not read 100 % busy in every 10 ms reading — steal time, interrupts
// and the timing of the readings make them wander (servio saturated at
// 2× on this machine: a quarter of its 10 ms readings under 80 %). Over
// the gate's window the core is still full, so a sustained delay must
// drive the level up to 3; a gate that fell on any single reading under
// 90 % held the level at 0 here, and under 1 in the 5 Dec runs while the
// server queued for seconds (admitted p50 0.9 s). A core that really has
// room still brings it down.
func TestAdaptiveCPUGateNoisyReadings(t *testing.T) {
	t.Parallel()
	clock := &setClock{now: time.Unix(1e9, 0)}
	var cpu time.Duration
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return 50 * time.Millisecond },
		CPUTime: func() time.Duration { return cpu }, CPUs: 1})
	read := func(n int, busy func(i int) float64) {
		for i := range n {
			clock.set(clock.now.Add(10 * time.Millisecond))
			cpu += time.Duration(busy(i) * float64(10*time.Millisecond))
			_, _ = l.Acquire(context.Background(), PriorityCritical)
		}
	}
	// /proc/<pid>/schedstat of servio saturated at 2×, read every 10 ms:
	// p5 0.75, p25 0.78, median 1.03, mean 0.98.
	noisy := func(i int) float64 { return [...]float64{1.03, 0.76, 1.02, 0.78, 1.03, 1.0, 1.02, 0.97}[i%8] } // mean 0.95
	read(200, noisy)
	assert.InDelta(t, 3, l.ShedLevel(), 1e-9, "a full core read noisily for 2 s: the level reaches 3")
	read(30, func(int) float64 { return 0.6 })
	assert.Zero(t, l.ShedLevel(), "the core at 60 %%: the level falls back to 0")
}

func TestProcessCPUTime(t *testing.T) {
	t.Parallel()
	cpu := ProcessCPUTime()
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && !strings.HasSuffix(runtime.GOOS, "bsd") && runtime.GOOS != "dragonfly" {
		assert.Nil(t, cpu, "no getrusage")
		return
	}
	require.NotNil(t, cpu)
	a := cpu()
	assert.Positive(t, a, "the test process has used CPU by now")
	assert.GreaterOrEqual(t, cpu(), a, "CPU time never goes back")
}

// TestAdaptiveDelayMaxRise: DelayMaxRise caps how far one reading of a
// delay far above the target raises the shed level (by default a whole
// level, 0.05 with CPUTime), the fall is unchanged, and a value outside
// (0, 1] is refused.
func TestAdaptiveDelayMaxRise(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		maxRise, want float64
		cpu           bool
	}{{0, 1, false}, {0.1, 0.1, false}, {0, 0.05, true}, {0.3, 0.3, true}} {
		clock := &setClock{now: time.Unix(1e9, 0)}
		d := 100 * time.Millisecond // 50× the target
		cfg := AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return d }, DelayMaxRise: c.maxRise}
		if c.cpu {
			start := clock.now
			cfg.CPUTime, cfg.CPUs = func() time.Duration { return clock.now.Sub(start) }, 1 // always busy
		}
		l := newTestAdaptive(t, cfg)
		read := func() {
			clock.set(clock.now.Add(10 * time.Millisecond))
			_, _ = l.Acquire(context.Background(), PriorityCritical)
		}
		read()
		if c.cpu { // the CPU gate needs a window of readings first
			for i := 0; i < 30 && l.ShedLevel() == 0; i++ {
				read()
			}
			lvl := l.ShedLevel()
			require.Positive(t, lvl, "%+v: a busy core opens the gate", c)
			read()
			assert.InDelta(t, c.want, l.ShedLevel()-lvl, 1e-9, "%+v", c)
			continue
		}
		assert.InDelta(t, c.want, l.ShedLevel(), 1e-9, "%+v: one reading", c)
		d = 0
		read()
		assert.InDelta(t, max(c.want-0.1, 0), l.ShedLevel(), 1e-9, "%+v: no delay, the level falls by 0.1", c)
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		_, err := NewAdaptiveLimiter(AdaptiveConfig{DelayMaxRise: bad})
		assert.ErrorIs(t, err, ErrInvalidConfig, "DelayMaxRise %v", bad)
	}
}

// TestAdaptiveMaxWait: while the shed level is above 0, a call that
// arrived more than MaxWait (low), 2× (normal) or 4× (high) ago is
// refused; critical calls and calls without an arrival time never are;
// at level 0 nothing is refused for its age.
func TestAdaptiveMaxWait(t *testing.T) {
	t.Parallel()
	clock := &setClock{now: time.Unix(1e9, 0)}
	var d time.Duration
	const maxWait = 10 * time.Millisecond
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return d },
		DelayMaxRise: 0.5, MaxWait: maxWait, MinLimit: 1000, InitialLimit: 1000, MaxLimit: 1000})
	read := func() { // one reading of Delay, taken by a critical call
		clock.set(clock.now.Add(10 * time.Millisecond))
		pm, err := l.Acquire(context.Background(), PriorityCritical)
		require.NoError(t, err)
		pm.Release(nil)
	}
	arrived := func(ago time.Duration) context.Context {
		return WithArrival(context.Background(), clock.now.Add(-ago))
	}
	admitted := func(ctx context.Context, p Priority) bool {
		pm, err := l.Acquire(ctx, p)
		if err != nil {
			var oe *OverloadError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, p, oe.Priority)
			return false
		}
		pm.Release(nil)
		return true
	}

	read()
	require.Zero(t, l.ShedLevel())
	assert.True(t, admitted(arrived(time.Second), PriorityNormal), "level 0: an old call is admitted")

	d = time.Second // far over the 2 ms target: the level rises by DelayMaxRise
	read()
	require.InDelta(t, 0.5, l.ShedLevel(), 1e-9)
	for _, c := range []struct {
		p   Priority
		ago time.Duration
		ok  bool
	}{
		{PriorityNormal, 2 * maxWait, true},
		{PriorityNormal, 2*maxWait + 1, false},
		{PriorityHigh, 4 * maxWait, true},
		{PriorityHigh, 4*maxWait + 1, false},
		{PriorityCritical, time.Hour, true},
	} {
		assert.Equal(t, c.ok, admitted(arrived(c.ago), c.p), "%v arrived %v ago at level 0.5", c.p, c.ago)
	}
	assert.True(t, admitted(context.Background(), PriorityNormal), "no arrival time: not refused for its age")
	assert.True(t, admitted(WithArrival(context.Background(), time.Time{}), PriorityNormal), "a zero arrival time is none")
	// Low calls are also shed by the level (every second one at 0.5):
	// of four that arrived just over MaxWait ago none is admitted, of
	// four that arrived at MaxWait two are.
	old, fresh := 0, 0
	for range 4 {
		if admitted(arrived(maxWait+1), PriorityLow) {
			old++
		}
		if admitted(arrived(maxWait), PriorityLow) {
			fresh++
		}
	}
	assert.Zero(t, old, "low calls older than MaxWait")
	assert.Equal(t, 2, fresh, "low calls at MaxWait: only the level's share is shed")

	d = 0
	for range 10 {
		read()
	}
	require.Zero(t, l.ShedLevel())
	assert.True(t, admitted(arrived(time.Hour), PriorityHigh), "back at level 0: old calls are admitted again")

	for _, c := range []AdaptiveConfig{{MaxWait: -1, Delay: func() time.Duration { return 0 }}, {MaxWait: time.Millisecond}} {
		_, err := NewAdaptiveLimiter(c)
		assert.ErrorIs(t, err, ErrInvalidConfig, "MaxWait %v, Delay set %v", c.MaxWait, c.Delay != nil)
	}
}

// TestAdaptiveMaxWaitSaturates: a MaxWait too large to double twice does
// not overflow into refusing everything.
func TestAdaptiveMaxWaitSaturates(t *testing.T) {
	t.Parallel()
	clock := &setClock{now: time.Unix(1e9, 0)}
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return time.Second },
		DelayMaxRise: 0.5, MaxWait: time.Duration(math.MaxInt64 / 3)})
	clock.set(clock.now.Add(10 * time.Millisecond))
	_, _ = l.Acquire(context.Background(), PriorityCritical) // level 0.5
	require.Positive(t, l.ShedLevel())
	pm, err := l.Acquire(WithArrival(context.Background(), clock.now.Add(-time.Hour)), PriorityHigh)
	require.NoError(t, err)
	pm.Release(nil)
}

// TestAdaptiveMaxWaitDoesNotAllocate: admitting and refusing a call with
// an arrival time, while the level is above 0, does not allocate. (Not
// parallel: AllocsPerRun.)
func TestAdaptiveMaxWaitDoesNotAllocate(t *testing.T) {
	clock := &setClock{now: time.Unix(1e9, 0)}
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return time.Second },
		DelayMaxRise: 0.5, MaxWait: 10 * time.Millisecond, MinLimit: 1000, InitialLimit: 1000, MaxLimit: 1000})
	clock.set(clock.now.Add(10 * time.Millisecond))
	_, _ = l.Acquire(context.Background(), PriorityCritical) // level 0.5
	require.Positive(t, l.ShedLevel())
	for _, c := range []struct {
		ago  time.Duration
		want bool
	}{{time.Millisecond, true}, {time.Second, false}} {
		ctx := WithArrival(context.Background(), clock.now.Add(-c.ago))
		var admitted bool
		allocs := testing.AllocsPerRun(100, func() {
			pm, err := l.Acquire(ctx, PriorityNormal)
			admitted = err == nil
			if admitted {
				pm.Release(nil)
			}
		})
		assert.Equal(t, c.want, admitted, "arrived %v ago", c.ago)
		assert.Zero(t, allocs, "arrived %v ago", c.ago)
	}
}

// TestAdaptiveRejectionReasons: perfkit.resilience.adaptive.rejections
// tells the Delay level's refusals (shed), MaxWait's (late), those with no
// room and no queue (full) and a queued call's (queued) apart.
func TestAdaptiveRejectionReasons(t *testing.T) {
	t.Parallel()
	reasons := func(reader *sdkmetric.ManualReader) map[string]int64 {
		return byAttr(t, reader, "perfkit.resilience.adaptive.rejections", "resilience.reason")
	}
	bg := context.Background()

	reader := sdkmetric.NewManualReader()
	clock := &setClock{now: time.Unix(1e9, 0)}
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return time.Second },
		DelayMaxRise: 0.5, MaxWait: 10 * time.Millisecond, MinLimit: 1, InitialLimit: 1, MaxLimit: 1,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	clock.set(clock.now.Add(10 * time.Millisecond))
	held, err := l.Acquire(bg, PriorityCritical) // takes the reading (level 0.5) and the only slot
	require.NoError(t, err)
	require.InDelta(t, 0.5, l.ShedLevel(), 1e-9)
	_, err = l.Acquire(WithArrival(bg, clock.now.Add(-time.Second)), PriorityNormal)
	require.ErrorIs(t, err, ErrOverloaded, "late")
	for range 2 { // the level's share lets the first low call through (no room: full), sheds the second
		_, err = l.Acquire(bg, PriorityLow)
		require.ErrorIs(t, err, ErrOverloaded)
	}
	held.Release(nil)
	assert.Equal(t, map[string]int64{"late": 1, "full": 1, "shed": 1}, reasons(reader))

	reader = sdkmetric.NewManualReader()
	l = newTestAdaptive(t, AdaptiveConfig{MinLimit: 1, InitialLimit: 1, MaxLimit: 1, MaxQueue: 1,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	held, err = l.Acquire(bg, PriorityNormal)
	require.NoError(t, err)
	canceled, cancel := context.WithCancel(bg)
	cancel()
	_, err = l.Acquire(canceled, PriorityNormal) // queued, then its context is done
	require.ErrorIs(t, err, ErrOverloaded)
	held.Release(nil)
	assert.Equal(t, map[string]int64{"queued": 1}, reasons(reader))
}
