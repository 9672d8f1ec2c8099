package dbpool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
