package resilience

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// handOffOrder runs one round on one P: a call holds the limiter's only
// slot and another waits for it; a byte arrives in a pipe whose reader is
// parked in the network poller (as a request's on a connection); then the slot is released. It
// returns which ran first: "network" (the reader) or "queued" (the
// waiting call, given the slot).
func handOffOrder(t *testing.T, networkFirst bool) string {
	t.Helper()
	l, err := NewAdaptiveLimiter(AdaptiveConfig{MinLimit: 1, MaxLimit: 1, MaxQueue: 4, NetworkFirst: networkFirst})
	require.NoError(t, err)
	defer l.Close()
	order := make(chan string, 2)
	held, _ := holdAndQueue(t, l, func() { order <- "queued" })
	// No scheduling point from the byte's write to the release: the byte
	// waits for the next network poll.
	arriveOnNetwork(t, order)
	held.Release(nil)
	first := <-order
	<-order
	return first
}

// arriveOnNetwork starts a reader parked in the network poller (as a
// request's goroutine on a connection) and, once it has parked, writes it
// a byte, which waits for the runtime's next network poll; the reader
// sends "network" on order when it runs. A pipe, not a TCP connection:
// its byte is readable as soon as the write returns (loopback TCP may
// deliver later, from a softirq), and the poller waits on both alike.
// The pipe is closed when the test ends.
func arriveOnNetwork(t *testing.T, order chan<- string) {
	t.Helper()
	server, client, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = server.Close()
		_ = client.Close()
	})
	go func() {
		var b [1]byte
		if _, err := server.Read(b[:]); err == nil {
			order <- "network"
		}
	}()
	time.Sleep(5 * time.Millisecond) // the reader parks in the poller
	_, err = client.Write([]byte{1})
	require.NoError(t, err)
}

// NetworkFirst's promise: a request that arrived while the slot was busy
// runs before the next queued call takes the slot. Without it the queued
// call runs first (the control).
func TestAdaptiveNetworkFirstPollsBeforeHandOff(t *testing.T) {
	requireNetworkFirst(t, handOffOrder, "queued", "with NetworkFirst the queued call took the slot before the request that had arrived was read")
}

// requireNetworkFirst runs round ten times with NetworkFirst on one P,
// requiring "network" (the request that had arrived) to run first each
// time, then ten times without, requiring other to run first at least
// once: the control, which shows the round tells the two apart (the
// runtime may poll in between, on a sysmon tick or a syscall's handoff,
// so it needs only one of several rounds). miss says what went wrong
// when a round with NetworkFirst fails.
func requireNetworkFirst(t *testing.T, round func(t *testing.T, networkFirst bool) string, other, miss string) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rounds = 10
	for i := range rounds {
		require.Equal(t, "network", round(t, true), "round %d: %s", i, miss)
	}
	otherFirst := 0
	for range rounds {
		if round(t, false) == other {
			otherFirst++
		}
	}
	require.Positive(t, otherFirst, "without NetworkFirst the request that had arrived ran first in every round: the round does not tell the two apart")
}

// While a handoff waits for the network poll, a new call of the same
// priority does not take the free slot: it queues behind the waiting one.
// (A round where the runtime polled between the release and the check —
// a descheduled syscall lets another thread poll — did not test that; it
// runs again.)
func TestAdaptiveNetworkFirstKeepsOrder(t *testing.T) {
	for range 10 {
		if keepsOrderRound(t) {
			return
		}
	}
	t.Fatal("the handoff never waited for a poll in ten rounds")
}

// keepsOrderRound reports whether the round found the handoff pending.
func keepsOrderRound(t *testing.T) bool {
	l := oneSlotNetworkFirst(t)
	order := make(chan string, 2)
	acquire := func(name string) {
		pm, err := l.Acquire(context.Background(), PriorityNormal)
		if err == nil {
			order <- name
			pm.Release(nil)
		}
	}
	held, _ := holdAndQueue(t, l, func() { order <- "first" })
	held.Release(nil)
	// The slot is free but handed to "first" only after a poll, which
	// needs this goroutine to give up the P.
	pending := l.InFlight() == 0
	if pending {
		go acquire("second")
	}
	require.Equal(t, "first", <-order)
	if pending {
		require.Equal(t, "second", <-order)
	}
	require.Equal(t, 0, l.InFlight())
	require.Equal(t, 0, l.Queued())
	return pending
}

// If the pipe fails (here its read end is closed under the limiter),
// handoffs go direct: the queued call still gets the slot.
func TestAdaptiveNetworkFirstPipeFailure(t *testing.T) {
	l := oneSlotNetworkFirst(t)
	ctx := context.Background()
	held, got := holdAndQueue(t, l, nil)
	require.NoError(t, l.handOffR.Close())
	held.Release(nil)
	requireServed(t, got, "the queued call never got the slot after the pipe failed")
	pm, err := l.Acquire(ctx, PriorityNormal)
	require.NoError(t, err, "admitted at once afterwards")
	pm.Release(nil)
}

// A call admitted at once first lets the goroutines already runnable run:
// a request read (or about to be) while the slot was free reaches Acquire
// before the admitted call's work starts, and queues behind it.
func TestAdaptiveNetworkFirstAdmitYields(t *testing.T) {
	l := oneSlotNetworkFirst(t)
	ctx := context.Background()
	done := make(chan struct{})
	go func() { // runnable, not yet run: this goroutine keeps the P
		defer close(done)
		if pm, err := l.Acquire(ctx, PriorityNormal); err == nil {
			pm.Release(nil)
		}
	}()
	pm, err := l.Acquire(ctx, PriorityNormal)
	require.NoError(t, err)
	require.Equal(t, 1, l.Queued(), "the runnable goroutine reached Acquire before the admitted call went on")
	pm.Release(nil)
	<-done
}

// Close stops the handoff goroutine (goleak checks it in TestMain) and
// hands the slot of a call still queued directly.
func TestAdaptiveNetworkFirstClose(t *testing.T) {
	l := oneSlotNetworkFirst(t)
	held, got := holdAndQueue(t, l, nil)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close")
	held.Release(nil)
	requireServed(t, got, "the queued call never got the slot after Close")
}

// oneSlotNetworkFirst returns a limiter of one slot and a queue of four
// with NetworkFirst, and runs the rest of the test on one P; both are
// undone when the test ends.
func oneSlotNetworkFirst(t *testing.T) *AdaptiveLimiter {
	t.Helper()
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	l, err := NewAdaptiveLimiter(AdaptiveConfig{MinLimit: 1, MaxLimit: 1, MaxQueue: 4, NetworkFirst: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// holdAndQueue takes l's only slot and starts a call that queues behind
// it: once that call gets the slot it runs onSlot (if not nil) and
// releases it; its error, nil once served, arrives on the channel.
// holdAndQueue returns when the call is queued.
func holdAndQueue(t *testing.T, l *AdaptiveLimiter, onSlot func()) (Permit, <-chan error) {
	t.Helper()
	held, err := l.Acquire(context.Background(), PriorityNormal)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		pm, err := l.Acquire(context.Background(), PriorityNormal)
		if err == nil {
			if onSlot != nil {
				onSlot()
			}
			pm.Release(nil)
		}
		got <- err
	}()
	waitQueued(t, l, 1)
	return held, got
}

// requireServed waits for the outcome holdAndQueue's call sends and
// requires it served; msg says what went wrong if it never is.
func requireServed(t *testing.T, got <-chan error, msg string) {
	t.Helper()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

// yieldOrder runs one round on one P: a call holds the limiter's only
// slot; a byte arrives in a pipe whose reader is parked in the network
// poller; the call then yields to the network and goes on. It returns
// which ran first: "network" (the reader) or "yielded" (the call, past
// YieldToNetwork).
func yieldOrder(t *testing.T, networkFirst bool) string {
	t.Helper()
	l, err := NewAdaptiveLimiter(AdaptiveConfig{MinLimit: 1, MaxLimit: 1, MaxQueue: 4, NetworkFirst: networkFirst})
	require.NoError(t, err)
	defer l.Close()
	held, err := l.Acquire(context.Background(), PriorityNormal)
	require.NoError(t, err)
	order := make(chan string, 2)
	// No scheduling point from the byte's write to YieldToNetwork.
	arriveOnNetwork(t, order)
	l.YieldToNetwork()
	order <- "yielded"
	require.Equal(t, 1, l.InFlight(), "the call kept its slot")
	held.Release(nil)
	first := <-order
	<-order
	return first
}

// YieldToNetwork's promise: a request that arrived while a call ran on
// the CPU is read before the call goes on. Without NetworkFirst it
// returns at once, and the call goes on first (the control).
func TestAdaptiveNetworkFirstYieldToNetwork(t *testing.T) {
	requireNetworkFirst(t, yieldOrder, "yielded", "the call went on past YieldToNetwork before the request that had arrived was read")
}

// A call that yields keeps its slot: a call queued behind it does not
// get the slot at the poll, only at the release.
func TestAdaptiveNetworkFirstYieldKeepsSlot(t *testing.T) {
	l := oneSlotNetworkFirst(t)
	order := make(chan string, 2)
	held, got := holdAndQueue(t, l, func() { order <- "queued" })
	l.YieldToNetwork()
	order <- "yielded"
	require.Equal(t, 1, l.Queued(), "the queued call still waits")
	held.Release(nil)
	requireServed(t, got, "the queued call never got the slot")
	require.Equal(t, "yielded", <-order)
	require.Equal(t, "queued", <-order)
}

// After Close, or once the pipe failed, YieldToNetwork returns at once.
func TestAdaptiveNetworkFirstYieldAfterClose(t *testing.T) {
	returns := func(l *AdaptiveLimiter, msg string) {
		t.Helper()
		done := make(chan struct{})
		go func() { l.YieldToNetwork(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal(msg)
		}
	}
	l := oneSlotNetworkFirst(t)
	require.NoError(t, l.Close())
	returns(l, "YieldToNetwork blocked after Close")
	l = oneSlotNetworkFirst(t)
	require.NoError(t, l.handOffR.Close())
	returns(l, "YieldToNetwork blocked after the pipe failed")
	returns(l, "YieldToNetwork blocked once handoffs went direct")
}

// Many goroutines yielding while others acquire and release, on every P:
// every yield returns, every call is served or refused, nothing is left
// in flight (run with -race).
func TestAdaptiveNetworkFirstYieldConcurrent(t *testing.T) {
	l, err := NewAdaptiveLimiter(AdaptiveConfig{MinLimit: 2, MaxLimit: 2, MaxQueue: 8, NetworkFirst: true})
	require.NoError(t, err)
	defer l.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if g%2 == 0 {
					l.YieldToNetwork()
					continue
				}
				pm, err := l.Acquire(context.Background(), PriorityNormal)
				if err != nil {
					continue
				}
				l.YieldToNetwork()
				pm.Release(nil)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a yield or a call never returned")
	}
	require.Equal(t, 0, l.InFlight())
	require.Equal(t, 0, l.Queued())
}

// A call that yields while the handoff goroutine takes its turn — here a
// reader woken by the same poll that woke the handoff goroutine — waits
// for the next poll, which the handoff goroutine asks for: it returns. On
// one P the two woken goroutines run in either order, so each round
// tests that case or the one where both yields share a poll; ten rounds.
func TestAdaptiveNetworkFirstYieldDuringTurn(t *testing.T) {
	l := oneSlotNetworkFirst(t)
	for i := range 10 {
		server, client, err := os.Pipe()
		require.NoError(t, err)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var b [1]byte
			if _, err := server.Read(b[:]); err == nil {
				l.YieldToNetwork()
			}
		}()
		time.Sleep(5 * time.Millisecond) // the reader parks in the poller
		_, err = client.Write([]byte{1})
		require.NoError(t, err)
		l.YieldToNetwork()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a yield made during the handoff goroutine's turn never returned", i)
		}
		require.NoError(t, server.Close())
		require.NoError(t, client.Close())
	}
}

// BenchmarkAdaptiveYieldToNetwork: what one YieldToNetwork costs with
// NetworkFirst on an otherwise idle process (run with -cpu 1: one P, as
// NetworkFirst is meant for): a pipe write, a network poll, the handoff
// goroutine's read and turn, and the switches back.
func BenchmarkAdaptiveYieldToNetwork(b *testing.B) {
	l, err := NewAdaptiveLimiter(AdaptiveConfig{MinLimit: 1, MaxLimit: 1, MaxQueue: 4, NetworkFirst: true})
	require.NoError(b, err)
	defer l.Close()
	b.ReportAllocs()
	for b.Loop() {
		l.YieldToNetwork()
	}
}
