package dbpool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/testenv"
)

// blackhole is a TCP listener that never accepts: the kernel completes the
// handshake, then nothing ever answers.
func blackhole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return fmt.Sprintf("postgres://u@%s/db?sslmode=disable", l.Addr())
}

func TestConnectTimeoutBlackhole(t *testing.T) {
	t.Parallel()
	dsn := blackhole(t)
	ctx := context.Background()

	start := time.Now()
	_, err := dbpool.OpenPostgres(ctx, dsn, dbpool.Config{})
	assert.ErrorIs(t, err, dbpool.ErrConnectTimeout, "warming at Open fails fast")
	assert.Less(t, time.Since(start), 2500*time.Millisecond)

	db, err := dbpool.OpenPostgres(ctx, dsn, dbpool.Config{MinConns: -1})
	require.NoError(t, err)
	defer db.Close()
	start = time.Now()
	_, err = db.ExecContext(ctx, "SELECT 1")
	assert.ErrorIs(t, err, dbpool.ErrConnectTimeout)
	assert.Less(t, time.Since(start), 2500*time.Millisecond, "a query fails within ~ConnectTimeout")
	assert.Equal(t, int64(1), db.Stats().ConnectTimeouts)
}

func TestQueryTimeoutCancelsServerSide(t *testing.T) {
	t.Parallel()
	db := openPostgres(t, dbpool.Config{MaxOpen: 1, MinConns: 1, QueryTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	var pid int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))

	start := time.Now()
	_, err := db.ExecContext(ctx, "SELECT pg_sleep(10)")
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.ErrorIs(t, err, dbpool.ErrQueryTimeout)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want the server's cancel error, got %v", err)
	assert.Equal(t, "57014", pgErr.Code, "query_canceled")

	var after int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&after))
	assert.Equal(t, pid, after, "the connection survived the cancel")
	assert.Equal(t, int64(1), db.Stats().Connects)

	// An explicit shorter deadline wins over QueryTimeout.
	db2 := openPostgres(t, dbpool.Config{MaxOpen: 1, MinConns: 1})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = db2.ExecContext(short, "SELECT pg_sleep(10)")
	require.Error(t, err)
	assert.NotErrorIs(t, err, dbpool.ErrQueryTimeout)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestRecoversAfterPostgresRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	var db *dbpool.DB
	require.Eventually(t, func() bool { // the server may still be starting up
		var err error
		db, err = dbpool.OpenPostgres(context.Background(), srv.DSN(), dbpool.Config{MinConns: 2, MaintainInterval: 50 * time.Millisecond})
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	defer db.Close()
	ctx := context.Background()
	require.NoError(t, db.PingContext(ctx))

	srv.Stop()
	start := time.Now()
	assert.Error(t, db.QueryRowContext(ctx, "SELECT 1").Err())
	assert.Less(t, time.Since(start), 2500*time.Millisecond, "a dead database fails fast")

	srv.Start()
	require.Eventually(t, func() bool {
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one) == nil
	}, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return db.Stats().OpenConnections >= 2 }, 5*time.Second, 10*time.Millisecond,
		"warm connections topped up after the restart")
}
