package dbpool_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
)

// TestDriverSurface runs database/sql's whole surface through the wrapper
// with context-free calls, so the default query timeout wraps the rows.
func TestDriverSurface(t *testing.T) {
	t.Parallel()
	db := openPostgres(t, dbpool.Config{})
	require.NoError(t, db.Ping())
	_, err := db.Exec("CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(6,2))")
	require.NoError(t, err)

	st, err := db.Prepare("INSERT INTO item VALUES ($1, $2, $3)")
	require.NoError(t, err)
	for i := range 3 {
		_, err = st.Exec(i, "tea", "1.50")
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	rows, err := db.Query("SELECT id, name, price FROM item ORDER BY id")
	require.NoError(t, err)
	cols, err := rows.ColumnTypes()
	require.NoError(t, err)
	require.Len(t, cols, 3)
	assert.Equal(t, "INT4", cols[0].DatabaseTypeName())
	assert.Equal(t, reflect.TypeFor[int32](), cols[0].ScanType())
	_, hasLen := cols[1].Length()
	assert.True(t, hasLen, "text has a length")
	prec, scale, ok := cols[2].DecimalSize()
	assert.True(t, ok)
	assert.Equal(t, [2]int64{6, 2}, [2]int64{prec, scale})
	_, hasNull := cols[0].Nullable()
	assert.False(t, hasNull, "pgx does not report nullability")
	n := 0
	for rows.Next() {
		n++
	}
	assert.False(t, rows.NextResultSet())
	require.NoError(t, rows.Close())
	assert.Equal(t, 3, n)

	tx, err := db.Begin()
	require.NoError(t, err)
	var count int
	require.NoError(t, tx.QueryRow("SELECT count(*) FROM item").Scan(&count))
	require.NoError(t, tx.Rollback())
	assert.Equal(t, 3, count)
	assert.Equal(t, int64(1+3+1+1), db.Stats().Queries, "create, 3 inserts, select, count")
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{MaxOpen: 1, MinConns: 1, AcquireTimeout: 10 * time.Millisecond, QueryTimeout: time.Nanosecond})
	ctx := context.Background()
	_, err := db.ExecContext(ctx, "SELECT 1")
	require.ErrorIs(t, err, dbpool.ErrQueryTimeout)
	assert.Contains(t, err.Error(), "dbpool: query timeout")

	c, err := db.Conn(ctx)
	require.NoError(t, err)
	defer c.Close()
	err = db.PingContext(ctx)
	require.ErrorIs(t, err, dbpool.ErrAcquireTimeout)
	assert.Contains(t, err.Error(), "dbpool: acquire timeout")
}
