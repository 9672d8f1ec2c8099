package dbpool_test

import (
	"context"
	"database/sql"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/dbpool"
)

func TestConfigInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  dbpool.Config
	}{
		{"negative MaxOpen", dbpool.Config{MaxOpen: -1}},
		{"MinConns above MaxOpen", dbpool.Config{MaxOpen: 2, MinConns: 3}},
		{"huge MaxOpen and MinConns", dbpool.Config{MaxOpen: 1 << 40, MinConns: 1 << 40}},
		{"saturation above 1", dbpool.Config{SaturationThreshold: 1.5}},
		{"saturation NaN", dbpool.Config{SaturationThreshold: math.NaN()}},
		{"negative ConnectTimeout", dbpool.Config{ConnectTimeout: -time.Second}},
		{"negative MaxIdle", dbpool.Config{MaxIdle: -1}},
		{"MaxIdle below the default MinConns", dbpool.Config{MaxIdle: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dbpool.Open(context.Background(), "sqlite", t.TempDir()+"/x.db", tt.cfg)
			assert.ErrorIs(t, err, dbpool.ErrInvalidConfig)
		})
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	t.Parallel()
	_, err := dbpool.Open(context.Background(), "no-such-driver", "", dbpool.Config{})
	assert.ErrorContains(t, err, "dbpool:")
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{})
	cfg := db.Config()
	assert.Equal(t, 20, cfg.MaxOpen)
	assert.Equal(t, 5, cfg.MinConns)
	assert.Equal(t, 7500, cfg.MaxUses)
	assert.Equal(t, 30*time.Second, cfg.QueryTimeout)
	assert.Equal(t, 30*time.Second, cfg.IdleTimeout)
	assert.Equal(t, 2*time.Second, cfg.ConnectTimeout)
	assert.Equal(t, time.Second, cfg.SlowQuery)
	assert.Equal(t, "sqlite", cfg.Name)
	s := db.Stats()
	assert.Equal(t, 20, s.MaxOpenConnections)
	assert.Equal(t, 5, s.OpenConnections, "MinConns warmed at Open")
	assert.Equal(t, 5, s.Idle, "warm connections are idle")
}

func TestMinConnsKeptAfterIdleClose(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 6, MinConns: 2, IdleTimeout: 100 * time.Millisecond})
	holdAndReturn(t, db, 6)
	require.Equal(t, 6, db.Stats().OpenConnections)
	require.Eventually(t, func() bool {
		s := db.Stats()
		return s.MaxIdleTimeClosed >= 4 && s.OpenConnections == 2
	}, 5*time.Second, 10*time.Millisecond, "idle connections above MinConns closed")
	// Fifteen idle timeouts: the warm connections are never closed, so not
	// even a momentary dip (it would cost the next caller a dial).
	assert.Never(t, func() bool { s := db.Stats(); return s.OpenConnections < 2 || s.Idle < 2 }, 1500*time.Millisecond, 5*time.Millisecond,
		"the warm MinConns stay open and idle past the idle timeout")
	assert.Equal(t, int64(4), db.Stats().MaxIdleTimeClosed, "only the connections above MinConns closed")
	assert.Equal(t, int64(6), db.Stats().Connects, "no warm connection closed and redialled")
}

// MaxIdle 2 with EagerDial is plain database/sql: connections returned
// while two are idle close, also after the maintainer closed idle ones
// (which moves database/sql's idle maximum for a moment).
func TestMaxIdleClosesReturnedConnections(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 6, MinConns: -1, MaxIdle: 2, EagerDial: true, IdleTimeout: 300 * time.Millisecond})
	holdAndReturn(t, db, 6)
	s := db.Stats()
	assert.Equal(t, 2, s.Idle, "two kept idle")
	assert.Equal(t, int64(4), s.MaxIdleClosed, "the other four closed on return")
	require.Eventually(t, func() bool { return db.Stats().OpenConnections == 0 }, 5*time.Second, 5*time.Millisecond,
		"idle ones close after IdleTimeout (no MinConns)")
	holdAndReturn(t, db, 6)
	s = db.Stats()
	assert.Equal(t, 2, s.Idle, "the idle bound survives the maintainer's idle closing")
	assert.Equal(t, int64(8), s.MaxIdleClosed)
}

// holdAndReturn takes n connections at once, then returns them all.
func holdAndReturn(t *testing.T, db *dbpool.DB, n int) {
	t.Helper()
	held := make([]*sql.Conn, 0, n)
	for range n {
		c, err := db.Conn(context.Background())
		require.NoError(t, err)
		held = append(held, c)
	}
	for _, c := range held {
		require.NoError(t, c.Close())
	}
}

func TestMinConnsKeptAfterRecycle(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 3, MinConns: 3, MaxUses: 2, MaxUsesJitter: -1})
	ctx := context.Background()
	for range 20 {
		var one int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
	}
	// A retired connection is counted before database/sql closes it, so
	// wait for its replacement, not only for three open connections.
	require.Eventually(t, func() bool {
		s := db.Stats()
		return s.OpenConnections == 3 && s.Connects >= 3+s.Retired
	}, 10*time.Second, 5*time.Millisecond, "warm + replacements")
	s := db.Stats()
	// 20 uses, 2 per connection; up to 3 connections may end with 1 use.
	assert.GreaterOrEqual(t, s.Retired, int64(9))
	assert.LessOrEqual(t, s.Retired, int64(10))
}

func TestMaxUsesExactPostgres(t *testing.T) {
	t.Parallel()
	db := openPostgres(t, dbpool.Config{MaxOpen: 1, MinConns: 1, MaxUses: 3, MaxUsesJitter: -1})
	ctx := context.Background()
	var pids []int
	for range 7 {
		var pid int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		pids = append(pids, pid)
	}
	assert.Equal(t, []int{pids[0], pids[0], pids[0], pids[3], pids[3], pids[3], pids[6]}, pids,
		"each backend serves exactly 3 queries")
	assert.NotEqual(t, pids[0], pids[3])
	assert.NotEqual(t, pids[3], pids[6])
	assert.Equal(t, int64(2), db.Stats().Retired)
}

func TestSaturation(t *testing.T) {
	t.Parallel()
	log, recs := newLogger()
	mp, collect := newMeter(t)
	// AcquireTimeout off: on a loaded machine the waiters must not give up
	// before the test has looked at them.
	db := openSQLite(t, dbpool.Config{MaxOpen: 20, Logger: log, MeterProvider: mp, MaintainInterval: 10 * time.Millisecond,
		AcquireTimeout: -1})
	ctx := context.Background()
	var held []*sql.Conn
	for range 20 {
		c, err := db.Conn(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { _ = db.PingContext(wctx) })
	}
	require.Eventually(t, func() bool { return db.Stats().Pending == 100 }, 5*time.Second, 5*time.Millisecond)
	s := db.Stats()
	assert.True(t, db.Saturated())
	assert.True(t, s.Saturated)
	assert.Equal(t, 1.0, s.Saturation)
	assert.Equal(t, 20, s.InUse)
	require.Eventually(t, func() bool { return len(recs.find("dbpool: pool saturated")) == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, "20", recs.find("dbpool: pool saturated")[0]["max"])
	m := collect()
	pending := m["db.client.connection.pending_requests"].(metricdata.Sum[int64])
	assert.Equal(t, int64(100), pending.DataPoints[0].Value)
	sat := m["perfkit.dbpool.connection.saturation"].(metricdata.Gauge[float64])
	assert.Equal(t, 1.0, sat.DataPoints[0].Value)

	for _, c := range held {
		require.NoError(t, c.Close())
	}
	wg.Wait()
	assert.Zero(t, db.Stats().Pending)
	assert.False(t, db.Saturated())
	require.Eventually(t, func() bool { return len(recs.find("dbpool: pool no longer saturated")) == 1 }, 2*time.Second, 5*time.Millisecond)
	waits := collect()["db.client.connection.wait_time"].(metricdata.Histogram[float64])
	assert.GreaterOrEqual(t, waits.DataPoints[0].Count, uint64(100), "every waiter's wait recorded")
}

func TestAcquireTimeout(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 1, MinConns: 1, AcquireTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	c, err := db.Conn(ctx)
	require.NoError(t, err)
	defer c.Close()

	start := time.Now()
	_, err = db.ExecContext(ctx, "SELECT 1")
	assert.ErrorIs(t, err, dbpool.ErrAcquireTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, int64(1), db.Stats().AcquireTimeouts)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err = db.QueryRowContext(short, "SELECT 1").Err()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the caller's earlier deadline wins")
	assert.NotErrorIs(t, err, dbpool.ErrAcquireTimeout)
	assert.Zero(t, db.Stats().Pending)
}

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	db, err := dbpool.Open(context.Background(), "sqlite", t.TempDir()+"/h.db", dbpool.Config{MinConns: 2})
	require.NoError(t, err)
	lat, s, err := db.HealthCheck(context.Background())
	require.NoError(t, err)
	assert.Positive(t, lat)
	assert.Equal(t, 2, s.MinConns)
	var check func(context.Context) error = db.Check
	assert.NoError(t, check(context.Background()))
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "Close is idempotent")
	assert.Error(t, db.Check(context.Background()), "a closed pool is unhealthy")
}

func TestSpikeServedByOpenConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		eager   bool
		atLeast int64
		atMost  int64
	}{
		// At most one growth dial, plus one a caller may start if it takes
		// the room the maintainer made before the maintainer dials into it.
		{"background growth", false, 0, 2},
		{"eager dial (database/sql)", true, 10, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A dial far slower than the spike: the spike is served (or not)
			// by the warm connections whatever the machine's load, and dials
			// are counted when they start, so no waiting for them to end.
			fc := &fakeConnector{dial: time.Second, query: 2 * time.Millisecond}
			db, err := dbpool.OpenConnector(context.Background(), fc, dbpool.Config{
				EagerDial: tt.eager, AcquireTimeout: -1, ConnectTimeout: time.Minute})
			require.NoError(t, err)
			defer db.Close() // cancels a background dial still in flight
			require.Equal(t, int64(5), fc.opened.Load(), "MinConns warmed")
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					var one int
					assert.NoError(t, db.QueryRowContext(context.Background(), "SELECT 1").Scan(&one))
				})
			}
			wg.Wait()
			dials := fc.dials.Load() - 5
			assert.GreaterOrEqual(t, dials, tt.atLeast)
			assert.LessOrEqual(t, dials, tt.atMost, "connections dialled for a 50-caller spike")
		})
	}
}

func TestMinConnsDefaultFollowsMaxOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  dbpool.Config
		want int
	}{
		{"default", dbpool.Config{}, 5},
		{"small MaxOpen", dbpool.Config{MaxOpen: 2}, 2},
		{"none", dbpool.Config{MinConns: -1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := dbpool.OpenConnector(context.Background(), &fakeConnector{}, tt.cfg)
			require.NoError(t, err)
			defer db.Close()
			assert.Equal(t, tt.want, db.Config().MinConns)
			assert.Equal(t, tt.want, db.Stats().OpenConnections, "warmed at Open")
		})
	}
}

func TestGrowthForCallersBypassingDB(t *testing.T) {
	t.Parallel()
	fc := &fakeConnector{query: 20 * time.Millisecond}
	db, err := dbpool.OpenConnector(context.Background(), fc, dbpool.Config{MaxOpen: 10, MinConns: 1})
	require.NoError(t, err)
	defer db.Close()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 5 {
				var one int
				assert.NoError(t, db.DB().QueryRowContext(context.Background(), "SELECT 1").Scan(&one))
			}
		})
	}
	wg.Wait()
	assert.Greater(t, db.Stats().OpenConnections, 1, "waits through db.DB() grow the pool too")
	assert.LessOrEqual(t, db.Stats().OpenConnections, 10)
}

func TestMaxUsesSpreadWithJitter(t *testing.T) {
	t.Parallel()
	fc := &fakeConnector{}
	db, err := dbpool.OpenConnector(context.Background(), fc, dbpool.Config{MaxOpen: 1, MinConns: 1, MaxUses: 100})
	require.NoError(t, err)
	defer db.Close()
	for range 3000 {
		var one int
		require.NoError(t, db.QueryRowContext(context.Background(), "SELECT 1").Scan(&one))
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	seen := map[int64]bool{}
	var retired []int64
	for _, c := range fc.conns {
		// Closed before db.Close: retired (the one still serving is open,
		// and may itself have just retired on the last query).
		if n := c.queries.Load(); n > 0 && c.closed.Load() {
			retired = append(retired, n)
		}
	}
	require.Greater(t, len(retired), 20)
	for _, n := range retired {
		assert.GreaterOrEqual(t, n, int64(90), "within -10 %")
		assert.LessOrEqual(t, n, int64(110), "within +10 %")
		seen[n] = true
	}
	assert.Greater(t, len(seen), 5, "retirements are spread, not one wave: %v", retired)
	assert.Equal(t, int64(len(retired)), db.Stats().Retired)
}
