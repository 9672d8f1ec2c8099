package resilience

import (
	"context"
	"time"
)

// simServer is a processor-sharing server measured by a fake clock: up to
// knee calls in flight each take base; past the knee they share the
// capacity, so every call slows by inflight/knee (latency rises with
// concurrency, throughput stays flat). clients callers each send a new call
// as soon as their last one ended or was refused (a closed loop that offers
// far more than the capacity when clients > knee).
type simServer struct {
	l       *AdaptiveLimiter
	clock   *manualClock
	prio    func(client int) Priority
	knee    int
	base    time.Duration
	tick    time.Duration
	clients []simCall
	// active is how many of the clients send new calls (all by default).
	active int

	// measured since the last reset
	ticks, peakInflight, sumInflight, served, refused int
	refusedBy                                         [prioritySlots]int
	servedBy                                          [prioritySlots]int
	maxNonCriticalOverLimit                           int
}

type simCall struct {
	busy bool
	p    Priority
	work time.Duration
	pm   Permit
}

func newSimServer(l *AdaptiveLimiter, clock *manualClock, clients, knee int, base time.Duration) *simServer {
	return &simServer{l: l, clock: clock, knee: knee, base: base, tick: time.Millisecond,
		clients: make([]simCall, clients), active: clients, prio: func(int) Priority { return PriorityNormal }}
}

func (s *simServer) reset() {
	s.ticks, s.peakInflight, s.sumInflight, s.served, s.refused = 0, 0, 0, 0, 0
	s.refusedBy, s.servedBy = [prioritySlots]int{}, [prioritySlots]int{}
}

// run simulates d of fake time.
func (s *simServer) run(d time.Duration) {
	ctx := context.Background()
	for end := s.clock.Now().Add(d); s.clock.Now().Before(end); {
		for i := range s.clients[:s.active] {
			c := &s.clients[i]
			if c.busy {
				continue
			}
			p := s.prio(i)
			pm, err := s.l.Acquire(ctx, p)
			if err != nil {
				s.refused++
				s.refusedBy[p.index()]++
				continue
			}
			if p != PriorityCritical {
				s.maxNonCriticalOverLimit = max(s.maxNonCriticalOverLimit, s.l.InFlight()-s.l.Limit())
			}
			*c = simCall{busy: true, p: p, pm: pm}
		}
		n := s.l.InFlight()
		s.ticks++
		s.sumInflight += n
		s.peakInflight = max(s.peakInflight, n)
		s.clock.Advance(s.tick)
		share := min(1, float64(s.knee)/float64(n))
		for i := range s.clients {
			c := &s.clients[i]
			if !c.busy {
				continue
			}
			c.work += time.Duration(float64(s.tick) * share)
			if c.work >= s.base {
				c.pm.Release(nil)
				c.busy = false
				s.served++
				s.servedBy[c.p.index()]++
			}
		}
	}
}

func (s *simServer) meanInflight() float64 { return float64(s.sumInflight) / float64(s.ticks) }
