package testenv

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedisPrefixCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var prefix string
	t.Run("inner", func(t *testing.T) {
		c, p := Redis(t)
		prefix = p
		for i := range 1200 { // more than one SCAN/UNLINK batch
			require.NoError(t, c.Set(ctx, p+"k"+string(rune('a'+i%26))+time.Duration(i).String(), "v", time.Minute).Err())
		}
	})
	c, _ := Redis(t)
	n, err := c.Keys(ctx, prefix+"*").Result() // test-only check on a tiny keyspace slice
	require.NoError(t, err)
	assert.Empty(t, n, "keys under %s left after cleanup", prefix)
}

func TestPrefixUnique(t *testing.T) {
	t.Parallel()
	assert.NotEqual(t, Prefix(t), Prefix(t))
	assert.NotContains(t, Prefix(t), "*")
}

func TestStartRedisKillRestartPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartRedis(t)
	c := s.Client()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Pause()
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := c.Ping(pctx).Err()
	cancel()
	assert.Error(t, err, "a paused server must not answer")
	s.Resume()
	require.NoError(t, c.Ping(ctx).Err())

	s.Kill()
	kctx, cancel := context.WithTimeout(ctx, time.Second)
	assert.Error(t, c.Ping(kctx).Err(), "a killed server must not answer")
	cancel()

	s.Restart()
	require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 5*time.Second, 20*time.Millisecond)
	assert.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "a restarted server starts empty")
}

// TestStartRedisPortTaken: a redis-server started on a port another
// process took first must not pass for started because that process
// answers there (a cluster node that was in fact another test's
// standalone Redis failed `redis-cli --cluster create`, CI 5 Dec 2026).
func TestStartRedisPortTaken(t *testing.T) {
	t.Parallel()
	first := StartRedis(t)
	second := &RedisServer{t: t, dir: t.TempDir(), Port: first.Port, Addr: first.Addr}
	err := second.start()
	require.ErrorIs(t, err, errPortTaken)
	second.Kill() // nothing to kill: start did not keep it
	require.NoError(t, first.Client().Ping(context.Background()).Err(), "the first server is untouched")
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := RedisCluster(t)
	require.Len(t, rc.Addrs, 3)
	c := rc.Client()
	var masters atomic.Int64 // ForEachMaster runs fn concurrently
	require.NoError(t, c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		masters.Add(1)
		return n.Ping(ctx).Err()
	}))
	assert.Equal(t, int64(3), masters.Load())
	for i := range 100 {
		require.NoError(t, c.Set(ctx, "p:"+time.Duration(i).String(), i, time.Minute).Err())
	}
	require.NoError(t, DeletePrefix(ctx, c, "p:"))
	var n atomic.Int64
	require.NoError(t, c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		k, err := m.DBSize(ctx).Result()
		n.Add(k)
		return err
	}))
	assert.Zero(t, n.Load(), "DeletePrefix must clear every master")
}

func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var schema string
	t.Run("inner", func(t *testing.T) {
		db := Postgres(t)
		require.NoError(t, db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema))
		assert.Regexp(t, `^t_[0-9a-f]{12}$`, schema)
		_, err := db.ExecContext(ctx, "CREATE TABLE x (id int)")
		require.NoError(t, err)
	})
	admin, err := sql.Open("pgx", DatabaseURL())
	require.NoError(t, err)
	defer admin.Close()
	var n int
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n))
	assert.Zero(t, n, "schema %s must be dropped after the test", schema)
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	db := SQLite(t)
	_, err := db.Exec("CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT)")
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO x (v) VALUES ('a')")
	require.NoError(t, err)
	var v string
	require.NoError(t, db.QueryRow("SELECT v FROM x").Scan(&v))
	assert.Equal(t, "a", v)
}

func TestStartPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartPostgres(t)
	db, err := sql.Open("pgx", s.DSN())
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE TABLE kept (id int)")
	require.NoError(t, err)

	s.Stop()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	assert.Error(t, db.PingContext(sctx), "a stopped server must not answer")
	cancel()

	s.Start()
	require.Eventually(t, func() bool { return db.PingContext(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM kept").Scan(&n), "data survives a restart")
}

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s&sslmode=disable"},
		{"host=h user=u", "host=h user=u search_path=s"},
	}
	for _, tt := range tests {
		got, err := withSearchPath(tt.in, "s")
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}
