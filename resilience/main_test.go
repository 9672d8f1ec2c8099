package resilience

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Breakers log state changes at Info through slog.Default; keep test
	// output readable. TestBreakerLogs checks the records with its own logger.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// autoClock fires every timer at once, moving its time forward by the
// timer's duration and recording it, so retry and rate-limit waits take no
// real time and their durations can be asserted exactly.
type autoClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newAutoClock() *autoClock { return &autoClock{now: time.Now()} }

func (c *autoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *autoClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *autoClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return chanTimer{ch}
}

func (c *autoClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// manualClock's timers fire only when Advance passes their deadline; each
// new timer is announced on Created.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*manualTimer
	Created chan time.Duration
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Now(), Created: make(chan time.Duration, 100)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &manualTimer{ch: make(chan time.Time, 1), at: c.now.Add(d)}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.Created <- d
	return t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.fire(c.now) {
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

type manualTimer struct {
	mu      sync.Mutex
	ch      chan time.Time
	at      time.Time
	stopped bool
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// fire delivers the time if due and reports whether the timer is done.
func (t *manualTimer) fire(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return true
	}
	if now.Before(t.at) {
		return false
	}
	t.stopped = true
	t.ch <- now
	return true
}

type chanTimer struct{ ch chan time.Time }

func (t chanTimer) C() <-chan time.Time { return t.ch }
func (t chanTimer) Stop() bool          { return false }

var (
	_ Clock = (*autoClock)(nil)
	_ Clock = (*manualClock)(nil)
)
