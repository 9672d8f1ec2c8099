package resilience

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// bhCall is one call through the bulkhead under test.
type bhCall struct {
	cancel  context.CancelFunc
	entered chan struct{} // closed when the call is inside
	finish  chan struct{}
	done    chan error
}

type bulkheadMachine struct {
	bh             *Bulkhead
	slots, queue   int
	inside, queued []*bhCall
	now, maxIn     atomic.Int32
	rejected       int
}

func (s *bulkheadMachine) start() *bhCall {
	ctx, cancel := context.WithCancel(context.Background())
	c := &bhCall{cancel: cancel, entered: make(chan struct{}), finish: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		c.done <- s.bh.Do(ctx, func(context.Context) error {
			n := s.now.Add(1)
			for m := s.maxIn.Load(); n > m && !s.maxIn.CompareAndSwap(m, n); m = s.maxIn.Load() {
			}
			close(c.entered)
			<-c.finish
			s.now.Add(-1)
			return nil
		})
	}()
	return c
}

// waitFor polls a bulkhead state the model predicts (no timing involved:
// it only waits for goroutines to get where the model says they will).
func waitFor(t *rapid.T, what string, cond func() bool) {
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never reached: %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// Enter starts a call: inside if a slot is free, queued if the queue has
// room, rejected at once otherwise.
func (s *bulkheadMachine) Enter(t *rapid.T) {
	c := s.start()
	switch {
	case len(s.inside) < s.slots && len(s.queued) == 0:
		<-c.entered
		s.inside = append(s.inside, c)
	case len(s.queued) < s.queue:
		s.queued = append(s.queued, c)
		waitFor(t, "queued", func() bool { return s.bh.Queued() == len(s.queued) })
	default:
		err := <-c.done
		c.cancel()
		if !errors.Is(err, ErrBulkheadFull) {
			t.Fatalf("want a rejection, got %v", err)
		}
		s.rejected++
	}
}

// Finish ends a call inside; a queued call, if any, takes its slot.
func (s *bulkheadMachine) Finish(t *rapid.T) {
	if len(s.inside) == 0 {
		t.Skip("nobody inside")
	}
	i := rapid.IntRange(0, len(s.inside)-1).Draw(t, "inside")
	c := s.inside[i]
	s.inside = slices.Delete(s.inside, i, i+1)
	close(c.finish)
	if err := <-c.done; err != nil {
		t.Fatalf("finished call: %v", err)
	}
	c.cancel()
	if len(s.queued) > 0 {
		var next int
		waitFor(t, "a queued call takes the slot", func() bool {
			for j, q := range s.queued {
				select {
				case <-q.entered:
					next = j
					return true
				default:
				}
			}
			return false
		})
		s.inside = append(s.inside, s.queued[next])
		s.queued = slices.Delete(s.queued, next, next+1)
	}
}

// CancelQueued cancels a queued call: a local rejection carrying
// context.Canceled, and its place in the queue frees.
func (s *bulkheadMachine) CancelQueued(t *rapid.T) {
	if len(s.queued) == 0 {
		t.Skip("nobody queued")
	}
	i := rapid.IntRange(0, len(s.queued)-1).Draw(t, "queued")
	c := s.queued[i]
	s.queued = slices.Delete(s.queued, i, i+1)
	c.cancel()
	err := <-c.done
	if !errors.Is(err, ErrBulkheadFull) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while queued: got %v", err)
	}
}

func (s *bulkheadMachine) Check(t *rapid.T) {
	if n := s.maxIn.Load(); int(n) > s.slots {
		t.Fatalf("%d calls inside at once, %d slots", n, s.slots)
	}
	if s.bh.InFlight() != len(s.inside) || s.bh.Queued() != len(s.queued) {
		t.Fatalf("bulkhead %d in flight, %d queued; model %d, %d", s.bh.InFlight(), s.bh.Queued(), len(s.inside), len(s.queued))
	}
}

func (s *bulkheadMachine) cleanup() {
	for _, c := range s.queued {
		c.cancel()
		<-c.done
	}
	for _, c := range s.inside {
		close(c.finish)
		<-c.done
		c.cancel()
	}
}

var bulkheadStats struct{ runs, rejected atomic.Int64 }

// TestBulkheadStateMachine checks, over random interleavings of calls
// entering, finishing and being canceled while queued, that no more than
// MaxConcurrent calls are ever inside, that the queue holds at most
// MaxQueue, and that a call is rejected exactly when both are full.
func TestBulkheadStateMachine(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		s := &bulkheadMachine{slots: rapid.IntRange(1, 3).Draw(t, "slots"), queue: rapid.IntRange(0, 3).Draw(t, "queue")}
		var err error
		if s.bh, err = NewBulkhead(BulkheadConfig{MaxConcurrent: s.slots, MaxQueue: s.queue, MeterProvider: noopProvider()}); err != nil {
			t.Fatal(err)
		}
		defer s.cleanup()
		t.Repeat(rapid.StateMachineActions(s))
		bulkheadStats.runs.Add(1)
		bulkheadStats.rejected.Add(int64(s.rejected))
	})
	t.Logf("%d interleavings, %d rejections when full", bulkheadStats.runs.Load(), bulkheadStats.rejected.Load())
}
