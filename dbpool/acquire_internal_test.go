package dbpool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
)

// TestAcquireTimeoutWhenIdleTakenMeanwhile: a caller that found an idle
// connection which another caller then took waits for a connection like any
// other, and that wait is bounded by AcquireTimeout too.
func TestAcquireTimeoutWhenIdleTakenMeanwhile(t *testing.T) {
	db, err := OpenConnector(context.Background(), nopConnector{}, Config{MaxOpen: 1, MinConns: 1, AcquireTimeout: 20 * time.Millisecond})
	require.NoError(t, err)
	defer db.Close()
	require.Eventually(t, func() bool { return db.Stats().Idle == 1 }, 5*time.Second, time.Millisecond)

	var held interface{ Close() error }
	hook := func() { // the caller looked at the pool; now someone takes its idle connection
		testHookAcquire.Store(nil)
		c, err := db.p.db.Conn(context.Background())
		require.NoError(t, err)
		held = c
	}
	testHookAcquire.Store(&hook)
	defer testHookAcquire.Store(nil)
	release := time.AfterFunc(10*time.Second, func() { _ = held.Close() }) // unblock a failing run
	defer release.Stop()

	start := time.Now()
	err = db.PingContext(context.Background())
	waited := time.Since(start)
	assert.ErrorIs(t, err, ErrAcquireTimeout, "waited %v", waited)
	assert.Less(t, waited, 5*time.Second)
	require.NotNil(t, held)
	require.NoError(t, held.Close())
}

// TestAcquireArmSettleRace: a caller armed by database/sql's wait while the
// driver wrapper settles it (a connection handed over at that moment) ends
// with its timer and parent-cancel hook stopped, whichever runs first, and
// counted pending exactly once. Run with -race.
func TestAcquireArmSettleRace(t *testing.T) {
	p := bareAcquirePool(t, time.Hour)
	for range 2000 {
		parent, cancel := context.WithCancel(context.Background())
		_, a := p.begin(parent)
		_ = a.Done() // the non-blocking check's poll
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.Done() }() // the wait's poll arms
		go func() { defer wg.Done(); a.settle(true) }()
		wg.Wait()
		if a.armed.Load() {
			assert.False(t, a.timer.Stop(), "timer left running")
			assert.False(t, a.stop(), "parent-cancel hook left registered")
		}
		assert.Zero(t, p.pending.Load())
		assert.Nil(t, a.Err())
		cancel()
	}
}

// TestAcquireBoundFromCallStart: the bound is armed when the caller starts
// to wait but runs from the call's start, not from the arming.
func TestAcquireBoundFromCallStart(t *testing.T) {
	p := bareAcquirePool(t, 50*time.Millisecond)
	_, a := p.begin(context.Background())
	a.start = a.start.Add(-time.Hour) // the call started long ago
	assert.Nil(t, a.Done(), "the first poll gets the caller's channel")
	select {
	case <-a.Done(): // armed with a bound already spent: closed at once
	case <-time.After(10 * time.Second):
		t.Fatal("bound not armed from the call's start")
	}
	assert.ErrorIs(t, a.Err(), ErrAcquireTimeout)
	assert.Zero(t, p.pending.Load())
}

// bareAcquirePool is a pool with only what begin and its acquireCtx use.
func bareAcquirePool(t *testing.T, acquire time.Duration) *pool {
	p := &pool{cfg: Config{AcquireTimeout: acquire, EagerDial: true, MeterProvider: noop.NewMeterProvider()}}
	var err error
	p.in, err = newInstruments(p)
	require.NoError(t, err)
	return p
}
