package dbpool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/testenv"
)

// pair is a private PostgreSQL primary, its streaming replica and a
// Cluster over them.
type pair struct {
	primary, replica *testenv.PostgresServer
	c                *dbpool.Cluster
}

// startPair starts a primary and a replica, creates table kv (k text
// primary key, v bigint) on the primary, waits for the replica to have it
// and opens a Cluster.
func startPair(t *testing.T, cfg dbpool.ClusterConfig) *pair {
	t.Helper()
	p := &pair{primary: testenv.StartPostgres(t)}
	p.replica = testenv.StartPostgresReplica(t, p.primary)
	ctx := t.Context()
	prim, err := dbpool.OpenPostgres(ctx, p.primary.DSN(), dbpool.Config{Name: "primary", MaxOpen: 8, MinConns: 2, Logger: quiet})
	require.NoError(t, err)
	_, err = prim.ExecContext(ctx, "CREATE TABLE kv (k text PRIMARY KEY, v bigint NOT NULL)")
	require.NoError(t, err)
	p.replica.WaitReplayed(p.primary, 30*time.Second)
	rep, err := dbpool.OpenPostgres(ctx, p.replica.DSN(), dbpool.Config{Name: "replica", MaxOpen: 8, MinConns: 2,
		ConnectTimeout: time.Second, Logger: quiet})
	require.NoError(t, err)
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	p.c, err = dbpool.NewCluster(ctx, prim, []*dbpool.DB{rep}, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.c.Close()) })
	return p
}

// where runs a read through the cluster and reports whether the server
// that answered is in recovery (the replica), the server's own answer.
func where(ctx context.Context, c *dbpool.Cluster) (onReplica bool, err error) {
	err = c.Read(ctx, func(db *dbpool.DB) error {
		return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&onReplica)
	})
	return onReplica, err
}

// Reads go to the replica, writes to the primary: the server that ran each
// says so itself, and the routed reads are counted per replica.
func TestClusterRoutesReadsToReplica(t *testing.T) {
	t.Parallel()
	mp, collect := newMeter(t)
	p := startPair(t, dbpool.ClusterConfig{MeterProvider: mp})
	ctx := t.Context()
	for range 10 {
		onReplica, err := where(ctx, p.c)
		require.NoError(t, err)
		assert.True(t, onReplica, "a read ran on the primary while the replica was usable")
	}
	var inRecovery bool
	require.NoError(t, p.c.Write(ctx, func(db *dbpool.DB) error {
		return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
	}))
	assert.False(t, inRecovery, "Write ran on the replica")
	st := p.c.ReplicaStats()
	require.Len(t, st, 1)
	assert.True(t, st[0].Usable)
	assert.Equal(t, int64(10), st[0].Reads)
	m := collect()
	reads := m["perfkit.dbpool.replica.reads"].(metricdata.Sum[int64])
	require.Len(t, reads.DataPoints, 1)
	assert.Equal(t, int64(10), reads.DataPoints[0].Value)
	assert.Contains(t, m, "perfkit.dbpool.replica.lag")
	assert.Contains(t, m, "perfkit.dbpool.replica.state")
}

// A replica whose replay is paused while the primary keeps writing leaves
// the read rotation once its lag passes MaxLag, within a check interval
// (plus the check's own time), and comes back when replay resumes.
func TestClusterLaggingReplicaLeavesRotation(t *testing.T) {
	t.Parallel()
	const maxLag, interval = 300 * time.Millisecond, 50 * time.Millisecond
	p := startPair(t, dbpool.ClusterConfig{MaxLag: maxLag, CheckInterval: interval})
	ctx := t.Context()
	onReplica, err := where(ctx, p.c)
	require.NoError(t, err)
	require.True(t, onReplica)

	p.replica.PauseReplay()
	stopWrites := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the primary keeps making WAL, so the paused replica falls behind
		for i := 0; ; i++ {
			_, err := p.c.Primary().ExecContext(ctx, "INSERT INTO kv VALUES ($1, $2)", fmt.Sprint("w", i), i)
			assert.NoError(t, err)
			select {
			case <-stopWrites:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	defer func() { close(stopWrites); wg.Wait() }()
	paused := time.Now()
	// The checker sees the lag once it passes maxLag, on its next tick; on a
	// loaded machine ticks and checks are late, so allow a generous 3 s more.
	require.Eventually(t, func() bool {
		on, err := where(ctx, p.c)
		return err == nil && !on
	}, maxLag+2*interval+3*time.Second, 5*time.Millisecond, "reads still on the paused replica")
	t.Logf("reads left the paused replica after %v (MaxLag %v, CheckInterval %v)", time.Since(paused), maxLag, interval)
	st := p.c.ReplicaStats()[0]
	assert.False(t, st.Usable)
	assert.GreaterOrEqual(t, st.Lag, maxLag)
	assert.ErrorContains(t, st.Err, "over MaxLag")
	for range 20 { // out means out: no read goes there meanwhile
		on, err := where(ctx, p.c)
		require.NoError(t, err)
		require.False(t, on, "a read went to the lagging replica")
	}

	p.replica.ResumeReplay()
	require.Eventually(t, func() bool {
		on, err := where(ctx, p.c)
		return err == nil && on
	}, 10*time.Second, 10*time.Millisecond, "reads did not return to the replica after replay resumed")
}

// A session's read after its write never sees the state before the write,
// whatever the replica's replay does: here it is paused and resumed
// throughout while sessions write and read back their own keys. MaxLag is
// large so the lagging replica stays in rotation and only
// read-your-writes keeps the sessions off it.
func TestClusterReadYourWrites(t *testing.T) {
	t.Parallel()
	p := startPair(t, dbpool.ClusterConfig{MaxLag: time.Hour, CheckInterval: 20 * time.Millisecond})
	ctx := t.Context()

	// The witness works: a write not recorded (made on Primary directly)
	// and a read under paused replay does see the old value.
	_, err := p.c.Primary().ExecContext(ctx, "INSERT INTO kv VALUES ('witness', 0)")
	require.NoError(t, err)
	p.replica.WaitReplayed(p.primary, 30*time.Second)
	p.replica.PauseReplay()
	_, err = p.c.Primary().ExecContext(ctx, "UPDATE kv SET v = 1 WHERE k = 'witness'")
	require.NoError(t, err)
	var v int64
	require.NoError(t, p.c.Read(ctx, func(db *dbpool.DB) error {
		return db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = 'witness'").Scan(&v)
	}))
	require.Equal(t, int64(0), v, "the replica should serve the stale value of an unrecorded write")
	p.replica.ResumeReplay()

	stop := make(chan struct{})
	var toggles sync.WaitGroup
	toggles.Go(func() { // replay paused 60 ms out of every 80
		for {
			p.replica.PauseReplay()
			select {
			case <-stop:
				p.replica.ResumeReplay()
				return
			case <-time.After(60 * time.Millisecond):
			}
			p.replica.ResumeReplay()
			time.Sleep(20 * time.Millisecond)
		}
	})
	var replicaReads, primaryReads, iterations atomic.Int64
	var wg sync.WaitGroup
	for s := range 4 {
		wg.Go(func() {
			key := fmt.Sprint("user-", s)
			sctx := dbpool.WithSession(ctx, key)
			if s%2 == 1 { // half the sessions are private to their context
				sctx = dbpool.WithSession(ctx, "")
			}
			require.NoError(t, p.c.Write(sctx, func(db *dbpool.DB) error {
				_, err := db.ExecContext(sctx, "INSERT INTO kv VALUES ($1, 0)", key)
				return err
			}))
			for i := int64(1); i <= 20; i++ {
				require.NoError(t, p.c.Write(sctx, func(db *dbpool.DB) error {
					_, err := db.ExecContext(sctx, "UPDATE kv SET v = $2 WHERE k = $1", key, i)
					return err
				}))
				// Read back for a while: first from the primary, then (once the
				// primary has flushed the write, up to its 200 ms
				// wal_writer_delay with synchronous_commit off, and the
				// replica has replayed it) from the replica too.
				for range 25 {
					var got int64
					var onReplica bool
					require.NoError(t, p.c.Read(sctx, func(db *dbpool.DB) error {
						return db.QueryRowContext(sctx, "SELECT v, pg_is_in_recovery() FROM kv WHERE k = $1", key).Scan(&got, &onReplica)
					}))
					require.Equal(t, i, got, "session %s read the state before its write (from the replica: %v)", key, onReplica)
					if onReplica {
						replicaReads.Add(1)
					} else {
						primaryReads.Add(1)
					}
					time.Sleep(10 * time.Millisecond)
				}
				iterations.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	toggles.Wait()
	t.Logf("%d write+read iterations: %d reads on the replica, %d on the primary", iterations.Load(), replicaReads.Load(), primaryReads.Load())
	assert.Positive(t, replicaReads.Load(), "no read reached the replica: the test did not exercise it")
	assert.Positive(t, primaryReads.Load(), "no read needed the primary: the test did not exercise read-your-writes")
}

// A replica killed under read load costs no read an error: reads it fails
// run again on the primary and the checker takes it out; once it is back
// the checker puts it back in.
func TestClusterReplicaKilledUnderLoad(t *testing.T) {
	t.Parallel()
	p := startPair(t, dbpool.ClusterConfig{CheckInterval: 50 * time.Millisecond})
	ctx := t.Context()
	stop := make(chan struct{})
	var errs, onReplica, total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				on, err := where(ctx, p.c)
				total.Add(1)
				if err != nil {
					errs.Add(1)
					t.Errorf("read failed: %v", err)
				}
				if on {
					onReplica.Add(1)
				}
			}
		})
	}
	require.Eventually(t, func() bool { return onReplica.Load() >= 20 }, 10*time.Second, 5*time.Millisecond)
	p.replica.StopImmediate()
	killedAt := total.Load()
	require.Eventually(t, func() bool { return total.Load() >= killedAt+200 }, 30*time.Second, 5*time.Millisecond)
	st := p.c.ReplicaStats()[0]
	assert.False(t, st.Usable, "the killed replica is still in rotation")
	p.replica.Start()
	before := onReplica.Load()
	require.Eventually(t, func() bool { return onReplica.Load() > before+20 }, 30*time.Second, 10*time.Millisecond,
		"reads did not return to the restarted replica")
	close(stop)
	wg.Wait()
	assert.Zero(t, errs.Load(), "reads failed while the replica died")
	t.Logf("%d reads, %d on the replica, %d rerun on the primary after a replica failure", total.Load(), onReplica.Load(), p.c.ReplicaStats()[0].Fallbacks)
}

// Without replicas (SQLite, or none configured) the same API runs every
// read and write on the primary and starts no goroutine.
func TestClusterWithoutReplicas(t *testing.T) {
	t.Parallel()
	mp, collect := newMeter(t)
	db, err := dbpool.Open(t.Context(), "sqlite", testenv.SQLitePath(t), dbpool.Config{Name: "main", Logger: quiet})
	require.NoError(t, err)
	c, err := dbpool.NewCluster(t.Context(), db, nil, dbpool.ClusterConfig{MeterProvider: mp})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	ctx := dbpool.WithSession(t.Context(), "user-1")
	require.NoError(t, c.Write(ctx, func(db *dbpool.DB) error {
		_, err := db.ExecContext(ctx, "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)")
		return err
	}))
	var v int
	require.NoError(t, c.Read(ctx, func(db *dbpool.DB) error { return db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v) }))
	assert.Equal(t, 7, v)
	assert.Equal(t, 0, c.Replicas())
	falls := collect()["perfkit.dbpool.replica.fallbacks"].(metricdata.Sum[int64])
	require.Len(t, falls.DataPoints, 1)
	assert.Equal(t, int64(1), falls.DataPoints[0].Value)
	reason, _ := falls.DataPoints[0].Attributes.Value("reason")
	assert.Equal(t, "no_replica", reason.AsString())
}

func TestNewClusterInvalidConfig(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{Logger: quiet})
	for _, cfg := range []dbpool.ClusterConfig{{MaxLag: -1}, {CheckInterval: -1}, {CheckTimeout: -1}, {MaxSessions: -1}} {
		_, err := dbpool.NewCluster(t.Context(), db, nil, cfg)
		assert.ErrorIs(t, err, dbpool.ErrInvalidConfig, "%+v", cfg)
	}
	_, err := dbpool.NewCluster(t.Context(), nil, nil, dbpool.ClusterConfig{})
	assert.ErrorIs(t, err, dbpool.ErrInvalidConfig)
	_, err = dbpool.NewCluster(t.Context(), db, []*dbpool.DB{nil}, dbpool.ClusterConfig{})
	assert.ErrorIs(t, err, dbpool.ErrInvalidConfig)
}

// A "replica" that is not in recovery (a primary given by mistake, or a
// promoted replica) never receives reads: its writes would not be the
// primary's.
func TestClusterRefusesServerNotInRecovery(t *testing.T) {
	t.Parallel()
	mp, collect := newMeter(t)
	ctx := t.Context()
	prim, err := dbpool.OpenPostgres(ctx, testenv.PostgresDSN(t), dbpool.Config{Name: "primary", MinConns: 1, Logger: quiet})
	require.NoError(t, err)
	notReplica, err := dbpool.OpenPostgres(ctx, testenv.DatabaseURL(), dbpool.Config{Name: "not-a-replica", MinConns: 1, Logger: quiet})
	require.NoError(t, err)
	c, err := dbpool.NewCluster(ctx, prim, []*dbpool.DB{notReplica}, dbpool.ClusterConfig{MeterProvider: mp, Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	st := c.ReplicaStats()[0]
	assert.False(t, st.Usable)
	assert.ErrorContains(t, st.Err, "not in recovery")
	var ran string
	require.NoError(t, c.Read(ctx, func(db *dbpool.DB) error { ran = db.Config().Name; return nil }))
	assert.Equal(t, "primary", ran)
	falls := collect()["perfkit.dbpool.replica.fallbacks"].(metricdata.Sum[int64])
	require.Len(t, falls.DataPoints, 1)
	reason, _ := falls.DataPoints[0].Attributes.Value("reason")
	assert.Equal(t, "unusable", reason.AsString())
}

// A Latest context's reads see every write committed before it, whoever
// made it (here one made on Primary directly, which no session recorded),
// and go to the replica once it has replayed them, without waiting for the
// next check (it is asked live).
func TestClusterLatest(t *testing.T) {
	t.Parallel()
	p := startPair(t, dbpool.ClusterConfig{MaxLag: time.Hour, CheckInterval: time.Hour}) // only the first check
	ctx := t.Context()
	_, err := p.c.Primary().ExecContext(ctx, "INSERT INTO kv VALUES ('k', 0)")
	require.NoError(t, err)
	read := func(ctx context.Context) (v int64, onReplica bool) {
		require.NoError(t, p.c.Read(ctx, func(db *dbpool.DB) error {
			return db.QueryRowContext(ctx, "SELECT v, pg_is_in_recovery() FROM kv WHERE k = 'k'").Scan(&v, &onReplica)
		}))
		return v, onReplica
	}
	p.replica.WaitReplayed(p.primary, 30*time.Second)
	p.replica.PauseReplay()
	_, err = p.c.Primary().ExecContext(ctx, "UPDATE kv SET v = 1 WHERE k = 'k'")
	require.NoError(t, err)
	v, onReplica := read(p.c.Latest(ctx))
	assert.Equal(t, int64(1), v, "a Latest read saw the state before a committed write")
	assert.False(t, onReplica)
	p.replica.ResumeReplay()
	p.replica.WaitReplayed(p.primary, 30*time.Second)
	v, onReplica = read(p.c.Latest(ctx))
	assert.Equal(t, int64(1), v)
	assert.True(t, onReplica, "a caught-up replica was not asked live")
}
