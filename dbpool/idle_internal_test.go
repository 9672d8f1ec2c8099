package dbpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nopConnector opens connections that can only be held and returned.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) { return nopConn{}, nil }
func (nopConnector) Driver() driver.Driver                        { return nopDriver{} }

type nopDriver struct{}

func (nopDriver) Open(string) (driver.Conn, error) { return nopConn{}, nil }

type nopConn struct{}

func (nopConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("nop: no statements") }
func (nopConn) Close() error                        { return nil }
func (nopConn) Begin() (driver.Tx, error)           { return nil, errors.New("nop: no transactions") }

// TestCloseIdleKeepsRecentlyReturned drives closeIdle with its now instead
// of the maintainer's ticker. database/sql closes the most recently returned
// idle connections, not the expired ones; the count of expired ones must
// still drop, or the next round closes connections idle for less than
// IdleTimeout.
func TestCloseIdleKeepsRecentlyReturned(t *testing.T) {
	t.Parallel()
	const idle = time.Minute
	db, err := OpenConnector(context.Background(), nopConnector{}, Config{
		MaxOpen: 4, MinConns: 1, EagerDial: true, IdleTimeout: idle, MaintainInterval: time.Hour})
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	var held []*sql.Conn
	for range 4 {
		c, err := db.Conn(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}
	require.NoError(t, held[0].Close())
	require.NoError(t, held[1].Close())
	t0 := time.Now()
	db.p.closeIdle(t0.Add(2 * idle))
	s := db.Stats()
	assert.Equal(t, 3, s.OpenConnections, "one of the two expired idle connections closed, MinConns kept idle")
	assert.Equal(t, int64(1), s.MaxIdleTimeClosed)

	time.Sleep(time.Millisecond) // the next two are returned strictly after t0
	require.NoError(t, held[2].Close())
	require.NoError(t, held[3].Close())
	now := t0.Add(idle + time.Nanosecond) // only the connection returned before t0 has expired
	db.p.closeIdle(now)
	assert.Equal(t, 2, db.Stats().OpenConnections, "one connection's worth closed for the one expired")
	db.p.closeIdle(now)
	s = db.Stats()
	assert.Equal(t, 2, s.OpenConnections, "the connections returned after t0 have not been idle for IdleTimeout")
	assert.Equal(t, int64(2), s.MaxIdleTimeClosed)

	db.p.closeIdle(now.Add(idle + time.Nanosecond))
	assert.Equal(t, 1, db.Stats().OpenConnections, "all expired: MinConns kept")
}

// TestCloseIdleCountsOnlyItsOwnCloses: with MaxIdle, connections returned
// by other goroutines while closeIdle runs are closed by the bound and
// counted in the same database/sql counter; closeIdle must count only what
// lowering the idle maximum closed (at most MaxIdle a round), or idle
// timeouts are overcounted and expired connections kept.
func TestCloseIdleCountsOnlyItsOwnCloses(t *testing.T) {
	t.Parallel()
	const maxIdle = 4
	db, err := OpenConnector(context.Background(), nopConnector{}, Config{
		MaxOpen: 40, MinConns: -1, MaxIdle: maxIdle, EagerDial: true, IdleTimeout: time.Minute, MaintainInterval: time.Hour})
	require.NoError(t, err)
	defer db.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for !stop.Load() {
				c, err := db.Conn(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				_ = c.Close()
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for round := 0; round < 200 || (db.Stats().MaxIdleClosed < 1000 && time.Now().Before(deadline)); round++ {
		before := db.p.idleClosed.Load()
		db.p.closeIdle(time.Now().Add(time.Hour)) // every idle connection has expired
		if d := db.p.idleClosed.Load() - before; d > maxIdle {
			t.Errorf("one round counted %d idle-timeout closes; at most %d were idle", d, maxIdle)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	assert.GreaterOrEqual(t, db.Stats().MaxIdleClosed, int64(1000), "the churn went through the MaxIdle bound")
}
