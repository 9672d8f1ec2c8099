package dbpool_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
)

func TestSQLiteDefaults(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{})
	ctx := context.Background()
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "5000"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
	}
	for _, tt := range tests {
		var got string
		require.NoError(t, db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got))
		assert.Equal(t, tt.want, got, tt.pragma)
	}
}

func TestSQLiteConcurrentWritersAndReaders(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 8})
	ctx := context.Background()
	_, err := db.ExecContext(ctx, "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO acct VALUES (1, 0)")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				// read-then-write transactions: with deferred BEGIN two of
				// them deadlock into SQLITE_BUSY; _txlock=immediate prevents it.
				tx, err := db.BeginTx(ctx, nil)
				if !assert.NoError(t, err) {
					return
				}
				var b int
				assert.NoError(t, tx.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&b))
				_, err = tx.ExecContext(ctx, "UPDATE acct SET bal = ? WHERE id = 1", b+1)
				assert.NoError(t, err)
				assert.NoError(t, tx.Commit())
				var r int
				assert.NoError(t, db.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&r))
			}
		})
	}
	wg.Wait()
	var bal int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = 1").Scan(&bal))
	assert.Equal(t, 80, bal, "no lost update, no SQLITE_BUSY")
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	db, err := dbpool.Open(context.Background(), "sqlite", ":memory:", dbpool.Config{})
	require.NoError(t, err)
	defer db.Close()
	assert.Equal(t, 1, db.Config().MaxOpen, "one connection holds an in-memory database")
	_, err = db.Exec("CREATE TABLE x (id INTEGER)")
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO x VALUES (1)")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM x").Scan(&n))
	assert.Equal(t, 1, n)

	_, err = dbpool.Open(context.Background(), "sqlite", ":memory:", dbpool.Config{MaxOpen: 4})
	assert.ErrorIs(t, err, dbpool.ErrInvalidConfig)
}

func TestSQLiteDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"a.db", "a.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"},
		{"file:a.db?_pragma=busy_timeout(100)&_txlock=deferred", "file:a.db?_pragma=busy_timeout(100)&_txlock=deferred&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"},
		{"a.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(1)&_pragma=foreign_keys(0)&_pragma=synchronous(FULL)&_txlock=exclusive", "a.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(1)&_pragma=foreign_keys(0)&_pragma=synchronous(FULL)&_txlock=exclusive"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, dbpool.SQLiteDSN(tt.in))
	}
}

func FuzzSQLiteDSN(f *testing.F) {
	f.Add("a.db")
	f.Add("file:x.db?mode=ro")
	f.Add("?&_pragma=")
	f.Fuzz(func(t *testing.T, dsn string) {
		got := dbpool.SQLiteDSN(dsn)
		if !strings.HasPrefix(got, dsn) {
			t.Fatalf("SQLiteDSN(%q) = %q does not keep the caller's DSN", dsn, got)
		}
		if dbpool.SQLiteDSN(got) != got {
			t.Fatalf("SQLiteDSN is not idempotent on %q", dsn)
		}
		lower := strings.ToLower(got)
		for _, p := range []string{"journal_mode", "busy_timeout", "foreign_keys", "synchronous", "_txlock"} {
			if !strings.Contains(lower, p) {
				t.Fatalf("SQLiteDSN(%q) = %q lacks %s", dsn, got, p)
			}
		}
	})
}
