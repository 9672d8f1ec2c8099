package dbpool_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/testenv"
)

// prepCounter wraps modernc.org/sqlite's connector and counts, below the
// pool, what the driver is asked to do: statements prepared and closed, and
// statements given as text (which the driver prepares, runs and finalises
// each time).
type prepCounter struct {
	drv                 driver.Driver
	dsn                 string
	prepared, closed    atomic.Int64
	textQuery, textExec atomic.Int64
}

func newPrepCounter(t testing.TB) *prepCounter {
	t.Helper()
	probe, err := sql.Open("sqlite", "")
	require.NoError(t, err)
	drv := probe.Driver()
	require.NoError(t, probe.Close())
	return &prepCounter{drv: drv, dsn: dbpool.SQLiteDSN(testenv.SQLitePath(t))}
}

// open opens a pool of one connection on the counted driver.
func (pc *prepCounter) open(t testing.TB, cache int) *dbpool.DB {
	t.Helper()
	db, err := dbpool.OpenConnector(context.Background(), pc, dbpool.Config{MaxOpen: 1, MinConns: 1, StatementCache: cache})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// live returns the statements prepared and not yet closed.
func (pc *prepCounter) live() int64 { return pc.prepared.Load() - pc.closed.Load() }

func (pc *prepCounter) Connect(ctx context.Context) (driver.Conn, error) {
	ci, err := pc.drv.Open(pc.dsn)
	if err != nil {
		return nil, err
	}
	return &prepConn{ci: ci, pc: pc}, nil
}

func (pc *prepCounter) Driver() driver.Driver { return pc.drv }

type prepConn struct {
	ci driver.Conn
	pc *prepCounter
}

func (c *prepConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *prepConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	si, err := c.ci.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.pc.prepared.Add(1)
	return &prepStmt{Stmt: si, pc: c.pc}, nil
}

func (c *prepConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.pc.textQuery.Add(1)
	return c.ci.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *prepConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.pc.textExec.Add(1)
	return c.ci.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *prepConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.ci.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *prepConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *prepConn) Close() error { return c.ci.Close() }

type prepStmt struct {
	driver.Stmt
	pc     *prepCounter
	closed bool
}

func (s *prepStmt) Close() error {
	if !s.closed {
		s.closed = true
		s.pc.closed.Add(1)
	}
	return s.Stmt.Close()
}

func (s *prepStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *prepStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// TestStatementCacheReusesPrepared: with a cache, SQL a connection ran
// before runs on the statement prepared the first time (the driver
// prepares each text once and never gets text); without one, the driver
// gets text every time.
func TestStatementCacheReusesPrepared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, cache := range []int{8, -1} {
		t.Run(fmt.Sprint(cache), func(t *testing.T) {
			t.Parallel()
			pc := newPrepCounter(t)
			db := pc.open(t, cache)
			_, err := db.ExecContext(ctx, "CREATE TABLE n (v INTEGER)")
			require.NoError(t, err)
			for i := range 50 {
				_, err := db.ExecContext(ctx, "INSERT INTO n VALUES (?)", i)
				require.NoError(t, err)
				var got int
				require.NoError(t, db.QueryRowContext(ctx, "SELECT ? + 1", i).Scan(&got))
				require.Equal(t, i+1, got)
			}
			if cache > 0 {
				assert.Equal(t, int64(3), pc.prepared.Load(), "CREATE, INSERT and SELECT prepared once each")
				assert.Zero(t, pc.textQuery.Load()+pc.textExec.Load(), "no SQL reached the driver as text")
			} else {
				assert.Zero(t, pc.prepared.Load())
				assert.Equal(t, int64(50), pc.textQuery.Load())
				assert.Equal(t, int64(51), pc.textExec.Load())
			}
			require.NoError(t, db.Close())
			assert.Zero(t, pc.live(), "closing the pool closes every cached statement")
		})
	}
}

// TestStatementCacheOpenRowsNotShared: a statement has one cursor, so the
// same SQL asked again while its rows are open (here in a transaction)
// runs on a statement of its own, and both reads see their own rows.
func TestStatementCacheOpenRowsNotShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := newPrepCounter(t)
	db := pc.open(t, 8)
	_, err := db.ExecContext(ctx, "CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3), (4)")
	require.NoError(t, err)
	const q = "SELECT v FROM n WHERE v >= ? ORDER BY v"
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	outer, err := tx.QueryContext(ctx, q, 1)
	require.NoError(t, err)
	var got []int
	require.True(t, outer.Next())
	var v int
	require.NoError(t, outer.Scan(&v))
	got = append(got, v)
	var inner []int
	rows, err := tx.QueryContext(ctx, q, 3)
	require.NoError(t, err)
	for rows.Next() {
		require.NoError(t, rows.Scan(&v))
		inner = append(inner, v)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	for outer.Next() {
		require.NoError(t, outer.Scan(&v))
		got = append(got, v)
	}
	require.NoError(t, outer.Err())
	require.NoError(t, outer.Close())
	assert.Equal(t, []int{1, 2, 3, 4}, got, "the outer read was not reset by the inner one")
	assert.Equal(t, []int{3, 4}, inner)
	assert.Equal(t, int64(1), pc.textQuery.Load(), "the inner read ran uncached")

	// Once the rows closed, the cached statement serves the text again.
	require.NoError(t, tx.QueryRowContext(ctx, q, 2).Scan(&v))
	assert.Equal(t, 2, v)
	assert.Equal(t, int64(1), pc.textQuery.Load())
}

// TestStatementCacheEvictsLeastRecentlyUsed: the cache holds at most
// StatementCache statements per connection, closing the least recently
// used one, and never one whose rows are open.
func TestStatementCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := newPrepCounter(t)
	db := pc.open(t, 2)
	one := func(q string) {
		t.Helper()
		var v int
		require.NoError(t, db.QueryRowContext(ctx, q).Scan(&v))
	}
	one("SELECT 1")
	one("SELECT 2")
	one("SELECT 1") // 2 is now the least recently used
	one("SELECT 3") // evicts 2
	assert.Equal(t, int64(3), pc.prepared.Load())
	assert.Equal(t, int64(2), pc.live())
	one("SELECT 1")
	one("SELECT 3")
	assert.Equal(t, int64(3), pc.prepared.Load(), "1 and 3 are still cached")
	one("SELECT 2")
	assert.Equal(t, int64(4), pc.prepared.Load(), "2 was evicted")
	assert.Equal(t, int64(2), pc.live())

	// Both cached statements busy: a third text runs uncached.
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	r1, err := tx.QueryContext(ctx, "SELECT 1 UNION ALL SELECT 1")
	require.NoError(t, err)
	r2, err := tx.QueryContext(ctx, "SELECT 2 UNION ALL SELECT 2")
	require.NoError(t, err)
	require.True(t, r1.Next())
	require.True(t, r2.Next())
	text := pc.textQuery.Load()
	var nine int
	require.NoError(t, tx.QueryRowContext(ctx, "SELECT 9").Scan(&nine))
	assert.Equal(t, 9, nine)
	assert.Equal(t, text+1, pc.textQuery.Load(), "no statement could be evicted")
	assert.LessOrEqual(t, pc.live(), int64(2))
	for _, r := range []*sql.Rows{r1, r2} {
		var v int
		require.NoError(t, r.Scan(&v))
		require.True(t, r.Next())
		require.NoError(t, r.Close())
	}
}

// TestStatementCacheErrorsAndSchemaChanges: SQL that does not prepare is
// the query's error and is not cached; a cached statement sees a changed
// schema (SQLite prepares it again itself); a query cancelled with its
// rows open leaves a statement the next run can use.
func TestStatementCacheErrorsAndSchemaChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := newPrepCounter(t)
	db := pc.open(t, 8)
	_, err := db.QueryContext(ctx, "SELEC 1")
	require.ErrorContains(t, err, "syntax error")
	_, err = db.ExecContext(ctx, "INSERT INTO missing VALUES (1)")
	require.ErrorContains(t, err, "no such table")
	assert.Zero(t, pc.live())

	_, err = db.ExecContext(ctx, "CREATE TABLE s (a INTEGER); INSERT INTO s VALUES (1), (2)")
	require.NoError(t, err)
	cols := func() []string {
		t.Helper()
		rows, err := db.QueryContext(ctx, "SELECT * FROM s")
		require.NoError(t, err)
		defer rows.Close()
		c, err := rows.Columns()
		require.NoError(t, err)
		return c
	}
	assert.Equal(t, []string{"a"}, cols())
	_, err = db.ExecContext(ctx, "ALTER TABLE s ADD COLUMN b TEXT")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, cols())

	cctx, cancel := context.WithCancel(ctx)
	rows, err := db.QueryContext(cctx, "SELECT a FROM s ORDER BY a")
	require.NoError(t, err)
	require.True(t, rows.Next())
	cancel()
	for rows.Next() {
	}
	_ = rows.Close()
	prepared := pc.prepared.Load()
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT a FROM s ORDER BY a").Scan(&n))
	assert.Equal(t, 1, n)
	assert.Equal(t, prepared, pc.prepared.Load(), "the cancelled query's statement served again")
	assert.Zero(t, pc.textQuery.Load(), "nothing ran uncached: the statement was not left busy")
}

// TestStatementCacheDefaults: Open with "sqlite" caches
// DefaultSQLiteStatementCache statements per connection, other drivers
// none, and a negative size is off.
func TestStatementCacheDefaults(t *testing.T) {
	t.Parallel()
	assert.Equal(t, dbpool.DefaultSQLiteStatementCache, openSQLite(t, dbpool.Config{}).Config().StatementCache)
	assert.Zero(t, openSQLite(t, dbpool.Config{StatementCache: -1}).Config().StatementCache)
	assert.Equal(t, 3, openSQLite(t, dbpool.Config{StatementCache: 3}).Config().StatementCache)
	assert.Zero(t, openPostgres(t, dbpool.Config{}).Config().StatementCache)
}

// TestStatementCacheInterleavedCursors is a state machine: cursors over a
// few SQL texts are opened, stepped and closed in any order on one
// connection (in a transaction) with a cache smaller than the texts (one
// without parameters), and
// every cursor must read exactly its own rows, while the driver never
// holds more prepared statements than the cache allows.
func TestStatementCacheInterleavedCursors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		pc := newPrepCounter(t)
		db, err := dbpool.OpenConnector(ctx, pc, dbpool.Config{MaxOpen: 1, MinConns: 1, StatementCache: 2})
		require.NoError(rt, err)
		defer func() { _ = db.Close() }()
		_, err = db.ExecContext(ctx, "CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3), (4), (5), (6)")
		require.NoError(rt, err)
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(rt, err)
		defer func() { _ = tx.Rollback() }()
		type cursor struct {
			rows *sql.Rows
			next int // the value the next row must hold
		}
		var open []*cursor
		// A text without parameters too: binding to a statement that is
		// running fails loudly, but running one again without binding
		// would silently restart another cursor's rows.
		texts := []string{
			"SELECT v FROM n WHERE v >= ? ORDER BY v",
			"SELECT v FROM n WHERE v >= ? ORDER BY v /* b */",
			"SELECT v FROM n WHERE v >= 1 + 0 * ? ORDER BY v",
			"SELECT v FROM n ORDER BY v",
		}
		rt.Repeat(map[string]func(*rapid.T){
			"open": func(rt *rapid.T) {
				if len(open) >= 4 {
					return // enough cursors: nothing to do in this state
				}
				from := rapid.IntRange(1, 6).Draw(rt, "from")
				text := rapid.SampledFrom(texts).Draw(rt, "text")
				var args []any
				switch strings.Count(text, "?") {
				case 1:
					args = append(args, from)
					if strings.Contains(text, "1 + 0 *") {
						from = 1
					}
				default:
					from = 1
				}
				rows, err := tx.QueryContext(ctx, text, args...)
				require.NoError(rt, err)
				open = append(open, &cursor{rows: rows, next: from})
			},
			"step": func(rt *rapid.T) {
				if len(open) == 0 {
					return // none open: nothing to do in this state
				}
				i := rapid.IntRange(0, len(open)-1).Draw(rt, "cursor")
				c := open[i]
				if c.next > 6 {
					require.False(rt, c.rows.Next(), "a cursor read past its end")
					require.NoError(rt, c.rows.Err())
					open = append(open[:i], open[i+1:]...)
					return
				}
				require.True(rt, c.rows.Next(), "cursor ended early: %v", c.rows.Err())
				var v int
				require.NoError(rt, c.rows.Scan(&v))
				require.Equal(rt, c.next, v, "a cursor read another's row")
				c.next++
			},
			"close": func(rt *rapid.T) {
				if len(open) == 0 {
					return // none open: nothing to do in this state
				}
				i := rapid.IntRange(0, len(open)-1).Draw(rt, "cursor")
				require.NoError(rt, open[i].rows.Close())
				open = append(open[:i], open[i+1:]...)
			},
			"": func(rt *rapid.T) {
				require.LessOrEqual(rt, pc.live(), int64(2), "statements the driver holds")
			},
		})
		for _, c := range open {
			require.NoError(rt, c.rows.Close())
		}
	})
}
