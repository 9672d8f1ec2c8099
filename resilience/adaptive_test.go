package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"pgregory.net/rapid"
)

func newTestAdaptive(t testing.TB, c AdaptiveConfig) *AdaptiveLimiter {
	t.Helper()
	if c.MeterProvider == nil {
		c.MeterProvider = noopProvider()
	}
	l, err := NewAdaptiveLimiter(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// The simulated server has a knee of 20 concurrent calls of 10 ms: a
// capacity of 2,000 calls/s; 80 clients offer about four times that.
const (
	simKnee    = 20
	simBase    = 10 * time.Millisecond
	simClients = 80
	simCap     = float64(simKnee) / 0.010 // calls per second
)

func TestAdaptiveConvergesNearKnee(t *testing.T) {
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock})
	s := newSimServer(l, clock, simClients, simKnee, simBase)
	s.run(10 * time.Second)
	settled := l.Limit()
	s.reset()
	s.run(10 * time.Second)
	t.Logf("limit %d → %d, mean in flight %.1f, goodput %.0f/s of %.0f", settled, l.Limit(), s.meanInflight(), float64(s.served)/10, simCap)
	if m := s.meanInflight(); m < simKnee || m > 2*simKnee {
		t.Errorf("mean in flight %.1f, want within [knee %d, 2×knee]", m, simKnee)
	}
	if d := l.Limit() - settled; d < -settled/10 || d > settled/10 {
		t.Errorf("limit moved from %d to %d over 10 s of steady overload; want stable within 10 %%", settled, l.Limit())
	}
	if g := float64(s.served) / 10; g < 0.9*simCap {
		t.Errorf("goodput %.0f/s, want ≥ 90 %% of capacity %.0f/s", g, simCap)
	}
	// Latency of admitted calls: mean in flight / knee × base.
	if lat := s.meanInflight() / simKnee; lat > 2 {
		t.Errorf("admitted calls take %.1f× the unloaded latency, want ≤ 2×", lat)
	}
	if s.refused == 0 {
		t.Error("4× overload refused nothing")
	}
}

func TestAdaptiveShrinksAndRecovers(t *testing.T) {
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock})
	s := newSimServer(l, clock, simClients, simKnee, simBase)
	s.run(10 * time.Second)
	settled := l.Limit()

	s.base = 3 * simBase // the dependency gets three times slower
	s.run(5 * time.Second)
	slow := l.Limit()
	if slow > settled/2 {
		t.Errorf("limit %d after latency tripled, want ≤ half of %d", slow, settled)
	}

	s.base = simBase
	s.run(10 * time.Second)
	if got := l.Limit(); got < settled*9/10 {
		t.Errorf("limit %d 10 s after latency fell back, want ≥ 90 %% of %d", got, settled)
	}
	t.Logf("limit settled %d, slow %d, recovered %d", settled, slow, l.Limit())
}

// TestAdaptiveDependencySlowsForGood documents what the controller does
// when the dependency itself gets slower (not from our load) while
// saturated: it cannot tell that from queueing, so the limit stays low
// (it sheds more than needed) until load ebbs; windows that do not use the
// limit then teach it the new latency, and the limit comes back.
func TestAdaptiveDependencySlowsForGood(t *testing.T) {
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock})
	s := newSimServer(l, clock, simClients, simKnee, simBase)
	s.run(10 * time.Second)
	settled := l.Limit()

	s.base = 3 * simBase
	s.run(10 * time.Second)
	if got := l.Limit(); got > settled/4 {
		t.Errorf("limit %d after 10 s of a 3× slower dependency under overload, want it held low (≤ %d)", got, settled/4)
	}
	s.active = 2 // load ebbs: two clients never use half the limit
	s.run(20 * time.Second)
	s.active = simClients
	s.run(10 * time.Second)
	if got := l.Limit(); got < settled*8/10 {
		t.Errorf("limit %d after the load ebbed and came back, want ≥ 80 %% of %d (the knee is still %d calls)", got, settled, simKnee)
	}
}

func TestAdaptiveIdleKeepsLimit(t *testing.T) {
	// Five clients never use half the limit: the limit does not move.
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock})
	s := newSimServer(l, clock, 5, simKnee, simBase)
	s.run(5 * time.Second)
	if l.Limit() != 20 || s.refused != 0 {
		t.Errorf("limit %d, refused %d; want 20 (initial), 0", l.Limit(), s.refused)
	}
}

func TestAdaptivePriorityOrderUnderPressure(t *testing.T) {
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{Clock: clock})
	s := newSimServer(l, clock, simClients, simKnee, simBase)
	prios := []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical}
	s.prio = func(i int) Priority {
		if i < 2 { // two health probes
			return PriorityCritical
		}
		return prios[i%3]
	}
	s.run(10 * time.Second)
	s.reset()
	s.run(5 * time.Second)
	low, normal, high, crit := s.servedBy[0], s.servedBy[1], s.servedBy[2], s.servedBy[3]
	t.Logf("served low %d normal %d high %d critical %d; refused %v; limit %d", low, normal, high, crit, s.refusedBy, l.Limit())
	if s.refusedBy[PriorityCritical.index()] != 0 {
		t.Errorf("%d critical calls refused, want 0", s.refusedBy[PriorityCritical.index()])
	}
	if crit == 0 {
		t.Error("no critical call served")
	}
	if !(low < normal && normal < high) {
		t.Errorf("served low %d, normal %d, high %d: want low < normal < high", low, normal, high)
	}
	if s.maxNonCriticalOverLimit > 0 {
		t.Errorf("a non-critical call was admitted with %d calls over the limit", s.maxNonCriticalOverLimit)
	}
}

func TestAdaptiveRejectsAtOnce(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, RetryAfter: 2 * time.Second})
	ctx := context.Background()
	var held []Permit
	for range 3 { // High may fill 90 % of 4 = 3
		pm, err := l.Acquire(ctx, PriorityHigh)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, pm)
	}
	_, err := l.Acquire(ctx, PriorityHigh)
	var oe *OverloadError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOverloaded) || oe.Priority != PriorityHigh || oe.Queued {
		t.Fatalf("err %v, want an *OverloadError for a high call, not queued", err)
	}
	if oe.RetryAfter() != 2*time.Second || !oe.Refused() {
		t.Errorf("RetryAfter %v, Refused %v; want 2s, true", oe.RetryAfter(), oe.Refused())
	}
	if DefaultIsFailure(err) {
		t.Error("DefaultIsFailure counts an overload refusal as a failure")
	}
	if _, err := l.Acquire(ctx, PriorityLow); !errors.Is(err, ErrOverloaded) {
		t.Errorf("low call with 3 of 4 in flight: %v, want ErrOverloaded", err)
	}
	// Critical is admitted even over the limit.
	for range 3 {
		pm, err := l.Acquire(ctx, PriorityCritical)
		if err != nil {
			t.Fatalf("critical call refused: %v", err)
		}
		held = append(held, pm)
	}
	if l.InFlight() != 6 {
		t.Errorf("in flight %d, want 6", l.InFlight())
	}
	for _, pm := range held {
		pm.Release(nil)
	}
	if l.InFlight() != 0 {
		t.Errorf("in flight %d after all releases, want 0", l.InFlight())
	}
	if got := oe.Error(); got != "resilience: overloaded, high priority call refused (adaptive)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestAdaptiveReleaseTwicePanics(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{})
	pm, err := l.Acquire(context.Background(), PriorityNormal)
	if err != nil {
		t.Fatal(err)
	}
	pm.Release(nil)
	defer func() {
		if recover() == nil {
			t.Error("second Release did not panic")
		}
	}()
	pm.Release(nil)
}

// waitQueued waits until n calls are queued.
func waitQueued(t *testing.T, l *AdaptiveLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queued %d, want %d", l.Queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdaptiveQueueServesHigherPriorityFirst(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 4, MinLimit: 4, MaxLimit: 4, MaxQueue: 3})
	ctx := context.Background()
	var held []Permit
	for range 3 {
		pm, _ := l.Acquire(ctx, PriorityHigh)
		held = append(held, pm)
	}
	type admitted struct {
		p  Priority
		pm Permit
	}
	got := make(chan admitted, 3)
	for i, p := range []Priority{PriorityLow, PriorityNormal, PriorityHigh} {
		go func() {
			pm, err := l.Acquire(ctx, p)
			if err != nil {
				t.Error(err)
			}
			got <- admitted{p, pm}
		}()
		waitQueued(t, l, i+1)
	}
	if _, err := l.Acquire(ctx, PriorityNormal); !errors.Is(err, ErrOverloaded) {
		t.Errorf("fourth waiter with MaxQueue 3: %v, want ErrOverloaded", err)
	}
	next := func(want Priority) Permit {
		t.Helper()
		a := <-got
		if a.p != want {
			t.Fatalf("admitted %v, want %v", a.p, want)
		}
		return a.pm
	}
	held[0].Release(nil) // 2 in flight: room for high (3)
	next(PriorityHigh).Release(nil)
	next(PriorityNormal).Release(nil) // 2 in flight: no room for low (2)
	if l.Queued() != 1 {
		t.Fatalf("queued %d, want the low call still waiting", l.Queued())
	}
	held[1].Release(nil)
	next(PriorityLow).Release(nil)
	held[2].Release(nil)
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Errorf("in flight %d, queued %d; want 0, 0", l.InFlight(), l.Queued())
	}
}

func TestAdaptiveQueueTimeout(t *testing.T) {
	clock := newManualClock()
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxQueue: 1, QueueTimeout: 50 * time.Millisecond, Clock: clock})
	ctx := context.Background()
	pm, _ := l.Acquire(ctx, PriorityNormal)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, PriorityNormal)
		errc <- err
	}()
	if d := <-clock.Created; d != 50*time.Millisecond {
		t.Fatalf("queue timer %v, want 50ms", d)
	}
	clock.Advance(50 * time.Millisecond)
	err := <-errc
	var oe *OverloadError
	if !errors.As(err, &oe) || !oe.Queued || oe.Err != nil {
		t.Fatalf("err %v, want a queued *OverloadError without a context error", err)
	}
	if l.Queued() != 0 || l.InFlight() != 1 {
		t.Errorf("queued %d, in flight %d; want 0, 1", l.Queued(), l.InFlight())
	}
	pm.Release(nil)
	if l.InFlight() != 0 {
		t.Errorf("in flight %d, want 0", l.InFlight())
	}
}

func TestAdaptiveCancelWhileQueued(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxQueue: 1})
	pm, _ := l.Acquire(context.Background(), PriorityNormal)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, PriorityNormal)
		errc <- err
	}()
	waitQueued(t, l, 1)
	cancel()
	err := <-errc
	if !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want ErrOverloaded and context.Canceled", err)
	}
	if l.Queued() != 0 || l.InFlight() != 1 {
		t.Errorf("queued %d, in flight %d; want 0, 1", l.Queued(), l.InFlight())
	}
	pm.Release(nil)
	if l.InFlight() != 0 {
		t.Errorf("in flight %d, want 0", l.InFlight())
	}
}

// TestAdaptiveCancelRacesGrant cancels a queued call while a release hands
// it the slot: whichever wins, every slot is released exactly once.
func TestAdaptiveCancelRacesGrant(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxQueue: 1})
	var admitted, refused int
	for i := range 200 {
		pm, _ := l.Acquire(context.Background(), PriorityNormal)
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			pm  Permit
			err error
		}
		res := make(chan result, 1)
		go func() {
			pm, err := l.Acquire(ctx, PriorityNormal)
			res <- result{pm, err}
		}()
		waitQueued(t, l, 1)
		if i%2 == 0 {
			cancel() // the waiter usually sees both its slot and ctx done
			pm.Release(nil)
		} else {
			pm.Release(nil)
			cancel()
		}
		r := <-res
		if r.err == nil {
			admitted++
			r.pm.Release(nil)
		} else {
			refused++
		}
		if l.InFlight() != 0 || l.Queued() != 0 {
			t.Fatalf("in flight %d, queued %d after the race; want 0, 0", l.InFlight(), l.Queued())
		}
	}
	t.Logf("admitted %d, refused %d", admitted, refused)
}

func TestAdaptiveWrappers(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 2, MinLimit: 2, MaxLimit: 2})
	boom := errors.New("boom")
	double := Adaptive1(l, func(_ context.Context, x int) (int, error) { return 2 * x, nil })
	if v, err := double(context.Background(), 21); v != 42 || err != nil {
		t.Errorf("Adaptive1 = %d, %v", v, err)
	}
	fail := Adaptive(l, func(context.Context) (int, error) { return 0, boom })
	if _, err := fail(context.Background()); err != boom {
		t.Errorf("Adaptive returned %v, want fn's error", err)
	}
	// A low call may use 50 % of 2 = 1 slot: hold it from inside fn.
	low := WithPriority(context.Background(), PriorityLow)
	inner := Adaptive(l, func(ctx context.Context) (int, error) {
		_, err := Adaptive(l, func(context.Context) (int, error) { return 0, nil })(ctx)
		return 0, err
	})
	if _, err := inner(low); !errors.Is(err, ErrOverloaded) {
		t.Errorf("second low call: %v, want ErrOverloaded", err)
	}
	if _, err := inner(WithPriority(context.Background(), PriorityCritical)); err != nil {
		t.Errorf("critical calls: %v", err)
	}
	if l.InFlight() != 0 {
		t.Errorf("in flight %d, want 0", l.InFlight())
	}
	if PriorityFrom(context.Background()) != PriorityNormal || PriorityFrom(low) != PriorityLow {
		t.Error("PriorityFrom")
	}
}

func TestAdaptiveConfigValidation(t *testing.T) {
	for _, c := range []AdaptiveConfig{
		{MinLimit: -1}, {MaxQueue: -1}, {QueueTimeout: -1}, {MinLimit: 10, MaxLimit: 5},
		{Tolerance: 0.5}, {Smoothing: 1.5}, {Window: -time.Second},
	} {
		if _, err := NewAdaptiveLimiter(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err %v, want ErrInvalidConfig", c, err)
		}
	}
	l := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 5000})
	if l.Limit() != 1000 {
		t.Errorf("InitialLimit 5000 clamped to %d, want MaxLimit 1000", l.Limit())
	}
}

func TestPriorityString(t *testing.T) {
	for p, want := range map[Priority]string{PriorityLow: "low", PriorityNormal: "normal", PriorityHigh: "high", PriorityCritical: "critical", -7: "low", 9: "critical"} {
		if p.String() != want {
			t.Errorf("Priority(%d).String() = %q, want %q", int(p), p.String(), want)
		}
	}
}

func TestAdaptiveAdmitDoesNotAllocate(t *testing.T) {
	l := newTestAdaptive(t, AdaptiveConfig{})
	ctx := context.Background()
	call := Adaptive(l, okCall)
	if n := testing.AllocsPerRun(1000, func() {
		pm, err := l.Acquire(ctx, PriorityNormal)
		if err != nil {
			t.Fatal(err)
		}
		pm.Release(nil)
		_, _ = call(ctx)
	}); n != 0 {
		t.Errorf("admit+release allocates %v times, want 0", n)
	}
	// Rejections are preallocated too.
	full := newTestAdaptive(t, AdaptiveConfig{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
	pm, _ := full.Acquire(ctx, PriorityNormal)
	defer pm.Release(nil)
	if n := testing.AllocsPerRun(1000, func() { _, _ = full.Acquire(ctx, PriorityLow) }); n != 0 {
		t.Errorf("a rejection allocates %v times, want 0", n)
	}
}

// TestAdaptiveProperties: under any sequence of acquisitions, releases
// (with any latency and outcome) and clock moves, a non-critical call is
// only admitted within the limit, critical calls are always admitted, and
// the limiter's count of calls in flight is the number of permits held.
func TestAdaptiveProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clock := newManualClock()
		l, err := NewAdaptiveLimiter(AdaptiveConfig{
			Clock: clock, MeterProvider: noopProvider(),
			InitialLimit:  rapid.IntRange(1, 30).Draw(rt, "initial"),
			MinLimit:      rapid.IntRange(1, 5).Draw(rt, "min"),
			MaxLimit:      rapid.IntRange(5, 40).Draw(rt, "max"),
			Window:        time.Duration(rapid.IntRange(1, 50).Draw(rt, "windowMs")) * time.Millisecond,
			WindowSamples: rapid.IntRange(1, 5).Draw(rt, "samples"),
		})
		if err != nil {
			rt.Fatal(err)
		}
		ctx := context.Background()
		var held []Permit
		acquires, releases := 0, 0
		outcomes := []error{nil, errors.New("boom"), context.Canceled, NotFailure(errors.New("4xx"))}
		for range rapid.IntRange(1, 200).Draw(rt, "steps") {
			switch rapid.IntRange(0, 2).Draw(rt, "op") {
			case 0:
				p := Priority(rapid.IntRange(-1, 2).Draw(rt, "prio"))
				pm, err := l.Acquire(ctx, p)
				if err != nil {
					if p == PriorityCritical {
						rt.Fatalf("critical call refused: %v", err)
					}
					if !errors.Is(err, ErrOverloaded) {
						rt.Fatalf("refusal %v is not ErrOverloaded", err)
					}
					continue
				}
				acquires++
				held = append(held, pm)
				if p != PriorityCritical && l.InFlight() > l.Limit() {
					rt.Fatalf("%v call admitted with %d in flight over a limit of %d", p, l.InFlight(), l.Limit())
				}
			case 1:
				if len(held) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(held)-1).Draw(rt, "which")
				held[i].Release(rapid.SampledFrom(outcomes).Draw(rt, "outcome"))
				held = append(held[:i], held[i+1:]...)
				releases++
			case 2:
				clock.Advance(time.Duration(rapid.IntRange(0, 100).Draw(rt, "advanceMs")) * time.Millisecond)
			}
			if l.InFlight() != len(held) {
				rt.Fatalf("in flight %d, permits held %d", l.InFlight(), len(held))
			}
			if lim := l.Limit(); lim < 1 || lim > 40 {
				rt.Fatalf("limit %d out of its bounds", lim)
			}
		}
		for _, pm := range held {
			pm.Release(nil)
			releases++
		}
		if acquires != releases || l.InFlight() != 0 {
			rt.Fatalf("%d acquisitions, %d releases, %d in flight", acquires, releases, l.InFlight())
		}
	})
}

func BenchmarkAdaptive(b *testing.B) {
	l := newTestAdaptive(b, AdaptiveConfig{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pm, err := l.Acquire(ctx, PriorityNormal)
			if err != nil {
				b.Fatal(err)
			}
			pm.Release(nil)
		}
	})
	// With the run-queue delay read every 10 ms, as servio does (a target
	// of an hour: the reading's cost, never a refusal).
	ld := newTestAdaptive(b, AdaptiveConfig{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000,
		Delay: SchedulerDelay(), DelayTarget: time.Hour})
	b.Run("serial-delay", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pm, err := ld.Acquire(ctx, PriorityNormal)
			if err != nil {
				b.Fatal(err)
			}
			pm.Release(nil)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pm, err := l.Acquire(ctx, PriorityNormal)
				if err != nil {
					b.Error(err)
					return
				}
				pm.Release(nil)
			}
		})
	})
}

func TestAdaptiveMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	l := newTestAdaptive(t, AdaptiveConfig{Name: "api", InitialLimit: 4, MinLimit: 4, MaxLimit: 4,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	ctx := context.Background()
	var held []Permit
	for _, p := range []Priority{PriorityLow, PriorityNormal, PriorityNormal, PriorityCritical, PriorityCritical} {
		pm, err := l.Acquire(ctx, p)
		require.NoError(t, err)
		held = append(held, pm)
	}
	for _, p := range []Priority{PriorityLow, PriorityLow, PriorityNormal, PriorityHigh} {
		_, err := l.Acquire(ctx, p)
		require.ErrorIs(t, err, ErrOverloaded)
	}
	got := collect(t, reader)
	assert.Equal(t, int64(4), got["perfkit.resilience.adaptive.limit"])
	assert.Equal(t, int64(5), got["perfkit.resilience.adaptive.inflight"])
	assert.Equal(t, int64(4), got["perfkit.resilience.adaptive.rejections"])
	assert.Equal(t, int64(1), got["perfkit.resilience.adaptive.overlimit"], "the second critical call went over the limit of 4")
	byPrio, byReason := map[string]int64{}, map[string]int64{}
	eachMetric(t, reader, func(m metricdata.Metrics) {
		if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "perfkit.resilience.adaptive.rejections" {
			assert.Equal(t, "{rejection}", m.Unit)
			for _, p := range s.DataPoints {
				v, _ := p.Attributes.Value("resilience.priority")
				r, _ := p.Attributes.Value("resilience.reason")
				pol, _ := p.Attributes.Value(attrPolicy)
				assert.Equal(t, "api", pol.AsString())
				byPrio[v.AsString()] += p.Value
				byReason[r.AsString()] += p.Value
			}
		}
	})
	assert.Equal(t, map[string]int64{"low": 2, "normal": 1, "high": 1}, byPrio)
	assert.Equal(t, map[string]int64{"full": 4}, byReason, "no room and no queue")
	for _, pm := range held {
		pm.Release(nil)
	}
	assert.Equal(t, int64(0), collect(t, reader)["perfkit.resilience.adaptive.inflight"])
	require.NoError(t, l.Close())
	assert.Equal(t, "api", l.Name())
}
