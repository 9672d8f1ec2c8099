package dbpool_test

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/internal/testenv"
)

// syncCloseConn is a client socket whose Close returns only once the
// server's backend for it has left pg_stat_activity (polled by client
// port). A backend exits a moment after its client closes; with this, a
// connection the pool has closed is gone from the server's count too, and
// a sample of pg_stat_activity above MaxOpen is a real violation, not a
// backend still exiting.
type syncCloseConn struct {
	net.Conn
	gone    func(port int) bool
	closing *closings
}

// closings counts the Closes in progress. Unlike a sync.WaitGroup it lets
// a Close begin after wait started: database/sql's opener can still be
// dialling (and pgx close the socket of a failed connect) after the pool's
// Close returned.
type closings struct {
	mu   sync.Mutex
	n    int
	zero *sync.Cond
}

func newClosings() *closings {
	c := &closings{}
	c.zero = sync.NewCond(&c.mu)
	return c
}

func (c *closings) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n += d; c.n == 0 {
		c.zero.Broadcast()
	}
}

func (c *closings) wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 {
		c.zero.Wait()
	}
}

func (c syncCloseConn) Close() error {
	c.closing.add(1)
	defer c.closing.add(-1)
	err := c.Conn.Close()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for end := time.Now().Add(10 * time.Second); !c.gone(port) && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	return err
}

// serverCountedPostgres opens a pool on the shared PostgreSQL whose
// connections carry a unique application_name and close synchronously
// (syncCloseConn), configured as OpenPostgres configures them. It returns
// the pool and a function counting the pool's backends in pg_stat_activity
// from a connection of its own.
func serverCountedPostgres(t *testing.T, cfg dbpool.Config) (*dbpool.DB, func() int) {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	pc, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	app := "dbpool_bound_" + rand.Text()[:10]
	pc.RuntimeParams["application_name"] = app
	admin := testenv.Postgres(t) // closed after the pool (cleanups run last first)
	admin.SetMaxIdleConns(4)
	gone := func(port int) bool {
		var n int
		err := admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND client_port = $2", app, port).Scan(&n)
		return err != nil || n == 0 // an error: the test is over, admin closed
	}
	closing := newClosings()
	t.Cleanup(closing.wait) // after the pool's Close, before admin's
	d := &net.Dialer{}
	pc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return syncCloseConn{Conn: c, gone: gone, closing: closing}, nil
	}
	pc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 2 * time.Second}
	}
	db, err := dbpool.OpenConnector(context.Background(), stdlib.GetConnector(*pc), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db, func() int {
		var n int
		err := admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
		require.NoError(t, err)
		return n
	}
}

// randN is a uniform int in [0, n).
func randN(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

// stress runs workers doing random acquire/release/cancel work on db until
// stop is closed: single queries, transactions, held connections and
// statements whose context is cancelled while they wait for a connection.
func stress(t *testing.T, db *dbpool.DB, workers int, stop <-chan struct{}, sleep string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx := context.Background()
				switch randN(5) {
				case 0, 1:
					var one int
					if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil && !errors.Is(err, dbpool.ErrAcquireTimeout) {
						t.Error(err)
						return
					}
				case 2:
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						if !errors.Is(err, dbpool.ErrAcquireTimeout) {
							t.Error(err)
							return
						}
						continue
					}
					_, err = tx.ExecContext(ctx, sleep)
					_ = tx.Rollback()
					if err != nil {
						t.Error(err)
						return
					}
				case 3:
					c, err := db.Conn(ctx)
					if err != nil {
						if !errors.Is(err, dbpool.ErrAcquireTimeout) {
							t.Error(err)
							return
						}
						continue
					}
					_, err = c.ExecContext(ctx, sleep)
					_ = c.Close()
					if err != nil {
						t.Error(err)
						return
					}
				case 4: // give up while waiting for a connection
					cctx, cancel := context.WithTimeout(ctx, time.Duration(randN(3000))*time.Microsecond)
					var one int
					err := db.QueryRowContext(cctx, "SELECT 1").Scan(&one)
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	return &wg
}

// TestMaxOpenServerSidePostgres counts the pool's connections from
// PostgreSQL's side (pg_stat_activity) during a stress run with
// retirements every few uses: never more than MaxOpen, not even while
// replacements are dialled.
func TestMaxOpenServerSidePostgres(t *testing.T) {
	t.Parallel()
	const maxOpen = 4
	db, count := serverCountedPostgres(t, dbpool.Config{
		MaxOpen: maxOpen, MinConns: maxOpen, MaxUses: 2, AcquireTimeout: time.Second,
		MaintainInterval: 10 * time.Millisecond, Logger: quiet,
	})
	stop := make(chan struct{})
	wg := stress(t, db, 24, stop, "SELECT 1")
	var samples, worst int
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || db.Stats().Retired < 60 {
		time.Sleep(200 * time.Microsecond) // leave the CPU to the pool mostly
		n := count()
		samples++
		worst = max(worst, n)
		if time.Since(deadline) > 20*time.Second {
			break
		}
	}
	close(stop)
	wg.Wait()
	s := db.Stats()
	t.Logf("%d samples of pg_stat_activity, most %d; %d queries, %d retired, %d connects", samples, worst, s.Queries, s.Retired, s.Connects)
	assert.GreaterOrEqual(t, s.Retired, int64(20), "the run retired connections (it aims at 60 within 23 s)")
	assert.LessOrEqual(t, worst, maxOpen, "connections on the server never exceed MaxOpen")
	assert.LessOrEqual(t, count(), maxOpen)
}

// TestLeakDetectionFreshConnection: a connection dialled for the caller and
// held without running a statement is a leak too.
func TestLeakDetectionFreshConnection(t *testing.T) {
	t.Parallel()
	log, recs := newLogger()
	db := openSQLite(t, dbpool.Config{MinConns: -1, LeakThreshold: 50 * time.Millisecond, MaintainInterval: 10 * time.Millisecond, Logger: log})
	c, err := db.Conn(context.Background()) // the pool is empty: dialled for this caller
	require.NoError(t, err)
	defer c.Close()
	require.Eventually(t, func() bool {
		return len(recs.find("dbpool: connection held longer than the leak threshold")) == 1
	}, 5*time.Second, 5*time.Millisecond, "a fresh connection held without a statement is reported")
	assert.Contains(t, recs.find("dbpool: connection held longer than the leak threshold")[0]["stack"], "TestLeakDetectionFreshConnection")
}

// TestNoBypassOfAccounting: DB exposes no *sql.DB to call around its
// accounting by accident (the escape hatch is the documented DB method),
// and PrepareContext is bounded by AcquireTimeout like the other methods.
func TestNoBypassOfAccounting(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[dbpool.DB]()
	for i := range typ.NumField() {
		assert.False(t, typ.Field(i).IsExported(), "DB has no exported field (%s)", typ.Field(i).Name)
	}
	_, setter := reflect.TypeFor[*dbpool.DB]().MethodByName("SetMaxOpenConns")
	assert.False(t, setter, "database/sql's knobs are not reachable: they would undo the pool's own")

	db := openSQLite(t, dbpool.Config{MaxOpen: 1, MinConns: 1, AcquireTimeout: 50 * time.Millisecond, Logger: quiet})
	held, err := db.Conn(context.Background())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		st, err := db.PrepareContext(context.Background(), "SELECT 1")
		if err == nil {
			_ = st.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, dbpool.ErrAcquireTimeout)
		assert.Equal(t, int64(1), db.Stats().AcquireTimeouts)
	case <-time.After(10 * time.Second):
		t.Error("PrepareContext waited past AcquireTimeout (50 ms) for 10 s")
		_ = held.Close()
		<-done
	}
	_ = held.Close()
}

// TestHealthSQLReportsMaxOpen: health's SQL check of a pool reports the
// pool's configured maximum, not database/sql's growth cap of the moment
// (it reported 5, MinConns, for a pool of 20).
func TestHealthSQLReportsMaxOpen(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{Logger: quiet})
	require.Equal(t, 5, db.DB().Stats().MaxOpenConnections, "database/sql's cap starts at MinConns")
	r := health.SQL(db)(context.Background())
	require.NoError(t, r.Err)
	var got any
	for _, m := range r.Measurements {
		if m.Name == "maxOpenConnections" {
			got = m.Value
		}
	}
	assert.Equal(t, dbpool.DefaultMaxOpen, got)
}
