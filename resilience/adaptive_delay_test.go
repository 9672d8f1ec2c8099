package resilience

import (
	"context"
	"math"
	"runtime"
	"slices"
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
		return
	}
	s.free = begin.Add(s.cost)
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
	l, err := NewAdaptiveLimiter(AdaptiveConfig{Clock: clock, Delay: func() time.Duration { return d }})
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
