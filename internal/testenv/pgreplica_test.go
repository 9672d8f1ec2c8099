package testenv_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/internal/testenv"
)

// A replica streams the primary's writes, stops showing them while its
// replay is paused and catches up when it resumes.
func TestPostgresReplica(t *testing.T) {
	t.Parallel()
	primary := testenv.StartPostgres(t)
	replica := testenv.StartPostgresReplica(t, primary)
	p, err := sql.Open("pgx", primary.DSN())
	require.NoError(t, err)
	defer p.Close()
	r, err := sql.Open("pgx", replica.DSN())
	require.NoError(t, err)
	defer r.Close()
	ctx := t.Context()
	count := func() (n int) {
		require.NoError(t, r.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n))
		return n
	}

	_, err = p.ExecContext(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	replica.WaitReplayed(primary, 30*time.Second)
	var inRecovery bool
	require.NoError(t, r.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	assert.True(t, inRecovery)
	assert.Equal(t, 1, count())

	replica.PauseReplay()
	_, err = p.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	require.NoError(t, err)
	// The write is flushed and streamed within the primary's 200 ms
	// wal_writer_delay; wait 5 times that and the replica still lacks it.
	time.Sleep(time.Second)
	assert.Equal(t, 1, count(), "the paused replica replayed a write")
	replica.ResumeReplay()
	replica.WaitReplayed(primary, 30*time.Second)
	assert.Equal(t, 2, count())

	_, err = r.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	assert.ErrorContains(t, err, "read-only", "the replica accepted a write")
}
