package dbpool_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/testenv"
)

// fakeConnector is an in-memory driver whose statements do nothing, so a
// benchmark measures only database/sql and the wrapper. dial and query are
// optional delays; dials counts connection attempts started, opened those
// that succeeded.
type fakeConnector struct {
	dial, query time.Duration
	dials       atomic.Int64
	opened      atomic.Int64

	mu    sync.Mutex
	conns []*fakeConn
}

func (c *fakeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.dials.Add(1)
	if c.dial > 0 {
		select {
		case <-time.After(c.dial):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.opened.Add(1)
	fc := &fakeConn{c: c}
	c.mu.Lock()
	c.conns = append(c.conns, fc)
	c.mu.Unlock()
	return fc, nil
}
func (c *fakeConnector) Driver() driver.Driver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return &fakeConn{c: &fakeConnector{}}, nil }

type fakeConn struct {
	c       *fakeConnector
	rows    fakeRows
	queries atomic.Int64
	closed  atomic.Bool
}

func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (c *fakeConn) Close() error                        { c.closed.Store(true); return nil }
func (c *fakeConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }
func (c *fakeConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	c.queries.Add(1)
	if c.c.query > 0 {
		time.Sleep(c.c.query)
	}
	c.rows.done = false
	return &c.rows, nil
}
func (c *fakeConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(0), nil
}

type fakeRows struct{ done bool }

func (r *fakeRows) Columns() []string { return []string{"one"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

// quiet drops the pool's logs: on a loaded machine a SELECT 1 can be "slow".
var quiet = slog.New(slog.DiscardHandler)

// querier is what *sql.DB and *dbpool.DB share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func benchSelect1(b *testing.B, db querier, ctx context.Context) {
	b.Helper()
	b.ReportAllocs()
	var one int
	for b.Loop() {
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
	}
}

// deadlineCtx has a deadline, so neither the acquire nor the query timeout
// needs a timer of its own.
func deadlineCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	b.Cleanup(cancel)
	return ctx
}

// BenchmarkWrapper measures database/sql alone against database/sql plus
// dbpool on a driver that does nothing: the whole cost of the wrapper.
// "bare" is sql.DB; "dbpool-driver" calls through the embedded *sql.DB
// (driver wrapper only); "dbpool" goes through DB's methods (acquire
// accounting too); "-bg" uses a context without deadline.
func BenchmarkWrapper(b *testing.B) {
	bare := sql.OpenDB(&fakeConnector{})
	bare.SetMaxIdleConns(20)
	b.Cleanup(func() { _ = bare.Close() })
	db, err := dbpool.OpenConnector(context.Background(), &fakeConnector{}, dbpool.Config{Logger: quiet})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	b.Run("bare", func(b *testing.B) { benchSelect1(b, bare, deadlineCtx(b)) })
	b.Run("dbpool-driver", func(b *testing.B) { benchSelect1(b, db.DB(), deadlineCtx(b)) })
	b.Run("dbpool", func(b *testing.B) { benchSelect1(b, db, deadlineCtx(b)) })
	b.Run("bare-bg", func(b *testing.B) { benchSelect1(b, bare, context.Background()) })
	b.Run("dbpool-bg", func(b *testing.B) { benchSelect1(b, db, context.Background()) })
}

// BenchmarkSelect1Postgres is SELECT 1 on the shared PostgreSQL through pgx's
// stdlib driver, bare and through dbpool.
func BenchmarkSelect1Postgres(b *testing.B) {
	dsn := testenv.PostgresDSN(b)
	bare, err := sql.Open("pgx", dsn)
	require.NoError(b, err)
	bare.SetMaxIdleConns(20)
	b.Cleanup(func() { _ = bare.Close() })
	db, err := dbpool.OpenPostgres(context.Background(), dsn, dbpool.Config{Logger: quiet})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	b.Run("bare", func(b *testing.B) { benchSelect1(b, bare, deadlineCtx(b)) })
	b.Run("dbpool", func(b *testing.B) { benchSelect1(b, db, deadlineCtx(b)) })
	b.Run("pgxpool-stdlib", func(b *testing.B) { benchSelect1(b, openPgxpoolDB(b, dsn), deadlineCtx(b)) })
}

// openPgxpoolDB is the alternative issue 17 weighed for PostgreSQL: pgxpool
// (MaxConns 20, MinConns 5, as dbpool's defaults) under database/sql through
// stdlib.OpenDBFromPool, which sets database/sql's idle maximum to 0 so
// every statement acquires from pgxpool.
func openPgxpoolDB(b *testing.B, dsn string) *sql.DB {
	pc, err := pgxpool.ParseConfig(dsn)
	require.NoError(b, err)
	pc.MaxConns, pc.MinConns = 20, 5
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(b, err)
	db := stdlib.OpenDBFromPool(pool)
	b.Cleanup(func() { _ = db.Close(); pool.Close() })
	return db
}

// BenchmarkSelect1SQLite is SELECT 1 on an SQLite file (modernc), bare with
// the same pragmas and through dbpool, with its statement cache (the
// default) and without.
func BenchmarkSelect1SQLite(b *testing.B) {
	path := testenv.SQLitePath(b)
	bare, err := sql.Open("sqlite", dbpool.SQLiteDSN(path))
	require.NoError(b, err)
	bare.SetMaxIdleConns(20)
	b.Cleanup(func() { _ = bare.Close() })
	db, err := dbpool.Open(context.Background(), "sqlite", path, dbpool.Config{Logger: quiet})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	nocache, err := dbpool.Open(context.Background(), "sqlite", path, dbpool.Config{Logger: quiet, StatementCache: -1})
	require.NoError(b, err)
	b.Cleanup(func() { _ = nocache.Close() })
	b.Run("bare", func(b *testing.B) { benchSelect1(b, bare, deadlineCtx(b)) })
	b.Run("dbpool", func(b *testing.B) { benchSelect1(b, db, deadlineCtx(b)) })
	b.Run("dbpool-nocache", func(b *testing.B) { benchSelect1(b, nocache, deadlineCtx(b)) })
}

// BenchmarkStatementCacheSQLite is a keyset page of 20 rows with a joined
// count per row, the shape of servio's order page, through dbpool on an
// SQLite file with the statement cache (the default) and without.
func BenchmarkStatementCacheSQLite(b *testing.B) {
	ctx := context.Background()
	path := testenv.SQLitePath(b)
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := dbpool.Open(ctx, "sqlite", path, dbpool.Config{Logger: quiet, StatementCache: tc.cache})
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS o (id INTEGER PRIMARY KEY, shop INTEGER NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL);
				CREATE TABLE IF NOT EXISTS li (id INTEGER PRIMARY KEY, o INTEGER NOT NULL REFERENCES o (id), qty INTEGER NOT NULL);
				CREATE INDEX IF NOT EXISTS o_shop ON o (shop, created DESC, id DESC);
				CREATE INDEX IF NOT EXISTS li_o ON li (o);
				INSERT INTO o (shop, name, created) WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 400)
					SELECT v % 4, 'guest ' || v, printf('2026-12-%02d', 1 + v % 28) FROM n WHERE NOT EXISTS (SELECT 1 FROM o);
				INSERT INTO li (o, qty) WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 1200)
					SELECT 1 + v % 400, v % 5 + 1 FROM n WHERE NOT EXISTS (SELECT 1 FROM li)`)
			require.NoError(b, err)
			const page = `SELECT o.id, o.name, o.created, (SELECT COUNT(*) FROM li WHERE li.o = o.id) FROM o
				WHERE o.shop = ? AND (o.created, o.id) < (?, ?) ORDER BY o.created DESC, o.id DESC LIMIT 20`
			b.ReportAllocs()
			for b.Loop() {
				rows, err := db.QueryContext(ctx, page, 1, "2026-12-31", 1<<30)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Close(); err != nil || n != 20 {
					b.Fatal(err, n)
				}
			}
		})
	}
}

// BenchmarkSpike is HikariCP's spike test: connecting takes 150 ms, a query
// 2 ms, and 50 callers arrive at once on an idle pool. It reports the
// connections opened per spike after warming ("conns") and the slowest
// caller's latency ("max-ms"). A background dial still in flight when the
// spike is over is cancelled by Close and not counted.
func BenchmarkSpike(b *testing.B) {
	const callers = 50
	run := func(b *testing.B, open func(*fakeConnector) (querier, func())) {
		b.ReportAllocs()
		var conns, slowest float64
		for b.Loop() {
			fc := &fakeConnector{dial: 150 * time.Millisecond, query: 2 * time.Millisecond}
			db, closeDB := open(fc)
			warm := fc.opened.Load()
			var wg sync.WaitGroup
			var worst atomic.Int64
			start := time.Now()
			for range callers {
				wg.Go(func() {
					var one int
					if err := db.QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil {
						b.Error(err)
					}
					d := int64(time.Since(start))
					for {
						w := worst.Load()
						if d <= w || worst.CompareAndSwap(w, d) {
							break
						}
					}
				})
			}
			wg.Wait()
			conns += float64(fc.opened.Load() - warm)
			slowest += float64(worst.Load()) / 1e6
			closeDB()
		}
		b.ReportMetric(conns/float64(b.N), "conns")
		b.ReportMetric(slowest/float64(b.N), "max-ms")
	}
	b.Run("bare", func(b *testing.B) {
		run(b, func(fc *fakeConnector) (querier, func()) {
			db := sql.OpenDB(fc)
			db.SetMaxOpenConns(20)
			db.SetMaxIdleConns(20)
			return db, func() { _ = db.Close() }
		})
	})
	b.Run("bare-warm5", func(b *testing.B) { // database/sql with 5 connections opened beforehand
		run(b, func(fc *fakeConnector) (querier, func()) {
			db := sql.OpenDB(fc)
			db.SetMaxOpenConns(20)
			db.SetMaxIdleConns(20)
			var held []*sql.Conn
			for range 5 {
				c, err := db.Conn(context.Background())
				require.NoError(b, err)
				held = append(held, c)
			}
			for _, c := range held {
				_ = c.Close()
			}
			return db, func() { _ = db.Close() }
		})
	})
	b.Run("dbpool-eager", func(b *testing.B) {
		run(b, func(fc *fakeConnector) (querier, func()) {
			db, err := dbpool.OpenConnector(context.Background(), fc, dbpool.Config{EagerDial: true, Logger: quiet})
			require.NoError(b, err)
			return db, func() { _ = db.Close() }
		})
	})
	b.Run("dbpool", func(b *testing.B) {
		run(b, func(fc *fakeConnector) (querier, func()) {
			db, err := dbpool.OpenConnector(context.Background(), fc, dbpool.Config{Logger: quiet})
			require.NoError(b, err)
			return db, func() { _ = db.Close() }
		})
	})
}

// BenchmarkWrapperParallel is BenchmarkWrapper from GOMAXPROCS×4 goroutines
// on a 20-connection pool: contention in the wrapper and DB's idle check.
func BenchmarkWrapperParallel(b *testing.B) {
	bare := sql.OpenDB(&fakeConnector{})
	bare.SetMaxOpenConns(20)
	bare.SetMaxIdleConns(20)
	b.Cleanup(func() { _ = bare.Close() })
	db, err := dbpool.OpenConnector(context.Background(), &fakeConnector{}, dbpool.Config{Logger: quiet})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	run := func(b *testing.B, q querier) {
		ctx := deadlineCtx(b)
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			var one int
			for pb.Next() {
				if err := q.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, bare) })
	b.Run("dbpool", func(b *testing.B) { run(b, db) })
}

// dialCounter counts the connections database/sql opens through it.
type dialCounter struct {
	driver.Connector
	dials atomic.Int64
}

func (c *dialCounter) Connect(ctx context.Context) (driver.Conn, error) {
	c.dials.Add(1)
	return c.Connector.Connect(ctx)
}

// BenchmarkBurstPostgres is traffic that comes and goes, as an open-loop
// load does: each op is a burst of 16 concurrent SELECT 1 on PostgreSQL,
// then a pause with nothing in flight. "sql-defaults" is sql.Open
// untouched: only 2 idle connections are kept, so after each burst 14
// close and the next burst dials them again; "dbpool" (its defaults)
// keeps them. It reports connections opened per burst ("dials/op").
func BenchmarkBurstPostgres(b *testing.B) {
	dsn := testenv.PostgresDSN(b)
	run := func(b *testing.B, q querier, dials func() int64) {
		ctx := deadlineCtx(b)
		burst := func() {
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					var one int
					if err := q.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		burst() // warm: the first burst dials in both
		start := dials()
		b.ReportAllocs()
		for b.Loop() {
			burst()
		}
		b.ReportMetric(float64(dials()-start)/float64(b.N), "dials/op")
	}
	b.Run("sql-defaults", func(b *testing.B) {
		c, err := stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(dsn)
		require.NoError(b, err)
		dc := &dialCounter{Connector: c}
		bare := sql.OpenDB(dc)
		b.Cleanup(func() { _ = bare.Close() })
		run(b, bare, dc.dials.Load)
	})
	b.Run("dbpool", func(b *testing.B) {
		db, err := dbpool.OpenPostgres(context.Background(), dsn, dbpool.Config{Logger: quiet})
		require.NoError(b, err)
		b.Cleanup(func() { _ = db.Close() })
		run(b, db, func() int64 { return db.Stats().Connects })
	})
	b.Run("pgxpool-stdlib", func(b *testing.B) {
		pc, err := pgxpool.ParseConfig(dsn)
		require.NoError(b, err)
		pc.MaxConns, pc.MinConns = 20, 5
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		require.NoError(b, err)
		db := stdlib.OpenDBFromPool(pool)
		b.Cleanup(func() { _ = db.Close(); pool.Close() })
		run(b, db, func() int64 { return pool.Stat().NewConnsCount() })
	})
}
