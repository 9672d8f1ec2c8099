package resilience

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Property-based state-machine tests (pgregory.net/rapid): random
// interleavings of calls, completions, cancellations, deadlines and fake
// clock advances against a simple model. They run in the normal go test in
// a few seconds; -rapid.checks=N runs more interleavings.

// pipeModel is the model of a pipeline breaker ⊃ bulkhead ⊃ rate limit:
// what each call should meet, and when the breaker should be open.
type pipeModel struct {
	threshold int // ConsecutiveFailures
	slots     int // bulkhead MaxConcurrent
	burst     int // rate limit burst, one token per minute

	open        bool
	generation  int // bumped by every breaker state change
	consecutive int // consecutive dependency failures counted
	tokens      int
	held        []*heldCall
}

// heldCall is a call parked inside the dependency until the test ends it.
type heldCall struct {
	gen    int
	cancel context.CancelFunc
	finish chan error // the dependency's answer
	done   chan error // Do's result
}

type pipeMachine struct {
	t        *rapid.T
	p        *Pipeline
	clk      *manualClock
	m        pipeModel
	inside   atomic.Int32 // calls inside the dependency now
	maxIn    atomic.Int32 // most calls inside at once
	reached  atomic.Int32 // calls that reached the dependency
	rejected map[string]int
}

var errDependency = errors.New("dependency failed")

func newPipeMachine(t *rapid.T) *pipeMachine {
	m := pipeModel{
		threshold: rapid.IntRange(1, 4).Draw(t, "threshold"),
		slots:     rapid.IntRange(1, 3).Draw(t, "slots"),
		burst:     rapid.IntRange(1, 5).Draw(t, "burst"),
	}
	m.tokens = m.burst
	clk := newManualClock()
	p, err := NewPipeline(PipelineConfig{
		Clock:         clk,
		Breaker:       &BreakerConfig{ConsecutiveFailures: m.threshold, OpenTimeout: time.Hour},
		Bulkhead:      &BulkheadConfig{MaxConcurrent: m.slots, MaxQueue: 4},
		RateLimit:     &RateLimitConfig{Limit: 1, Per: time.Minute, Burst: m.burst},
		MeterProvider: noopProvider(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &pipeMachine{t: t, p: p, clk: clk, m: m, rejected: map[string]int{}}
}

// dependency is the callee: it counts who is inside and answers what the
// test says.
func (s *pipeMachine) dependency(finish <-chan error) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		n := s.inside.Add(1)
		defer s.inside.Add(-1)
		for m := s.maxIn.Load(); n > m && !s.maxIn.CompareAndSwap(m, n); m = s.maxIn.Load() {
		}
		s.reached.Add(1)
		err := <-finish
		if errors.Is(err, context.Canceled) {
			return 0, ctx.Err()
		}
		return 0, err
	}
}

// admit reports what a new call meets in the model and takes its token:
// "" when it reaches the dependency. A call that would queue behind a full
// bulkhead is QueueDeadline's case, so the others skip it.
func (s *pipeMachine) admit(t *rapid.T) string {
	switch {
	case s.m.open:
		return "breaker"
	case len(s.m.held) >= s.m.slots:
		t.Skip("the bulkhead is full: the call would queue")
	case s.m.tokens == 0:
		return "ratelimit"
	}
	s.m.tokens--
	return ""
}

// outcome applies a finished dependency call to the model.
func (s *pipeMachine) outcome(gen int, err error) {
	if gen != s.m.generation || s.m.open {
		return // gobreaker ignores outcomes of an older generation
	}
	switch {
	case err == nil:
		s.m.consecutive = 0
	case errors.Is(err, context.Canceled), IsNotFailure(err):
		// not counted
	default:
		s.m.consecutive++
		if s.m.consecutive >= s.m.threshold {
			s.m.open, s.m.generation, s.m.consecutive = true, s.m.generation+1, 0
		}
	}
}

// Call makes a call that the dependency answers at once.
func (s *pipeMachine) Call(t *rapid.T) {
	answer := rapid.SampledFrom([]error{nil, errDependency, NotFailure(errDependency), context.Canceled}).Draw(t, "answer")
	want := s.admit(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finish := make(chan error, 1)
	if errors.Is(answer, context.Canceled) {
		cancel() // the caller gives up while the dependency works
	}
	finish <- answer
	_, err := Do(ctx, s.p, s.dependency(finish))
	s.check(t, want, err, answer)
	if want == "" {
		s.outcome(s.m.generation, answer)
	}
}

// Hold starts a call that stays inside the dependency (holding a slot).
func (s *pipeMachine) Hold(t *rapid.T) {
	want := s.admit(t)
	if want != "" {
		_, err := Do(context.Background(), s.p, s.dependency(nil))
		s.check(t, want, err, nil)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &heldCall{gen: s.m.generation, cancel: cancel, finish: make(chan error, 1), done: make(chan error, 1)}
	before := s.reached.Load()
	go func() {
		_, err := Do(ctx, s.p, s.dependency(h.finish))
		h.done <- err
	}()
	for s.reached.Load() == before {
		select {
		case err := <-h.done:
			t.Fatalf("held call did not reach the dependency: %v", err)
		default:
			time.Sleep(50 * time.Microsecond) // waiting for a state, not for time
		}
	}
	s.m.held = append(s.m.held, h)
}

// Release ends a held call with a drawn answer.
func (s *pipeMachine) Release(t *rapid.T) {
	if len(s.m.held) == 0 {
		t.Skip("nothing held")
	}
	i := rapid.IntRange(0, len(s.m.held)-1).Draw(t, "held")
	answer := rapid.SampledFrom([]error{nil, errDependency, NotFailure(errDependency), context.Canceled}).Draw(t, "answer")
	h := s.m.held[i]
	s.m.held = append(s.m.held[:i], s.m.held[i+1:]...)
	if errors.Is(answer, context.Canceled) {
		h.cancel()
	}
	h.finish <- answer
	err := <-h.done
	h.cancel()
	if !errors.Is(err, answer) && !(answer == nil && err == nil) {
		t.Fatalf("held call: got %v, want %v", err, answer)
	}
	s.outcome(h.gen, answer)
}

// QueueDeadline makes a call whose deadline has passed while the bulkhead
// is full: it ends in the queue and must never count against the
// dependency.
func (s *pipeMachine) QueueDeadline(t *rapid.T) {
	if s.m.open || len(s.m.held) < s.m.slots {
		t.Skip("needs a closed breaker and a full bulkhead")
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := Do(ctx, s.p, s.dependency(nil))
	if !errors.Is(err, ErrBulkheadFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queue deadline: got %v", err)
	}
	s.rejected["queue-deadline"]++
}

// Advance moves the fake clock by whole minutes (one token each).
func (s *pipeMachine) Advance(t *rapid.T) {
	n := rapid.IntRange(1, 3).Draw(t, "minutes")
	s.clk.Advance(time.Duration(n) * time.Minute)
	s.m.tokens = min(s.m.burst, s.m.tokens+n)
}

func (s *pipeMachine) check(t *rapid.T, want string, err, answer error) {
	var ok bool
	switch want {
	case "breaker":
		ok = errors.Is(err, ErrOpen)
	case "ratelimit":
		ok = errors.Is(err, ErrRateLimited)
	default:
		ok = errors.Is(err, answer) || (err == nil && answer == nil)
	}
	if !ok {
		t.Fatalf("want %q (answer %v), got %v", want, answer, err)
	}
	if want != "" {
		s.rejected[want]++
	}
}

// Check is the invariant after every step.
func (s *pipeMachine) Check(t *rapid.T) {
	want := StateClosed
	if s.m.open {
		want = StateOpen
	}
	if got := s.p.Breaker().State(); got != want {
		t.Fatalf("breaker %v, model %v (consecutive %d of %d)", got, want, s.m.consecutive, s.m.threshold)
	}
	if n := s.maxIn.Load(); int(n) > s.m.slots {
		t.Fatalf("%d calls inside the dependency, bulkhead allows %d", n, s.m.slots)
	}
	if n := s.p.Bulkhead().InFlight(); n != len(s.m.held) {
		t.Fatalf("bulkhead holds %d slots, model %d", n, len(s.m.held))
	}
}

func (s *pipeMachine) cleanup() {
	for _, h := range s.m.held {
		h.finish <- nil
		<-h.done
		h.cancel()
	}
}

// pipeStats totals what the pipeline machine exercised, for RELIABILITY.md.
var pipeStats struct{ runs, queueDeadlines, opened atomic.Int64 }

// TestPipelineStateMachine checks, over random interleavings, that the
// breaker opens exactly when the model's dependency failures say so (never
// on queue deadlines, bulkhead or rate-limit rejections, cancellations or
// NotFailure errors), and that no more than MaxConcurrent calls are ever
// inside the dependency.
func TestPipelineStateMachine(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s := newPipeMachine(t)
		defer s.cleanup()
		t.Repeat(rapid.StateMachineActions(s))
		pipeStats.runs.Add(1)
		pipeStats.queueDeadlines.Add(int64(s.rejected["queue-deadline"]))
		if s.m.open {
			pipeStats.opened.Add(1)
		}
	})
	t.Logf("%d interleavings, %d queue deadlines, %d ended open", pipeStats.runs.Load(), pipeStats.queueDeadlines.Load(), pipeStats.opened.Load())
}
