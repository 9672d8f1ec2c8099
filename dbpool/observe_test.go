package dbpool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/servio/perfkit/dbpool"
)

func TestSlowQueryLoggedRedacted(t *testing.T) {
	t.Parallel()
	log, recs := newLogger()
	mp, collect := newMeter(t)
	db := openPostgres(t, dbpool.Config{SlowQuery: 100 * time.Millisecond, Logger: log, MeterProvider: mp})
	ctx := context.Background()
	_, err := db.ExecContext(ctx, "CREATE TABLE users (name text, password text)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO users VALUES ($1, $2)", "ann", "hunter2")
	require.NoError(t, err)

	const slow = "SELECT count(*) FROM users, pg_sleep(0.3) WHERE password = $1"
	var n int
	require.NoError(t, db.QueryRowContext(ctx, slow, "hunter2").Scan(&n))
	require.Equal(t, 1, n)

	var got []map[string]string
	for _, r := range recs.find("dbpool: slow query") { // on a loaded machine a fast statement may be slow too
		if r["sql"] == slow {
			got = append(got, r)
		}
	}
	require.Len(t, got, 1, "the slow statement is logged once")
	assert.Equal(t, slow, got[0]["sql"])
	assert.Equal(t, "1", got[0]["args"])
	d, err := time.ParseDuration(got[0]["duration"])
	require.NoError(t, err)
	assert.GreaterOrEqual(t, d, 300*time.Millisecond)
	for k, v := range got[0] {
		assert.NotContains(t, v, "hunter2", "argument values are redacted (attr %s)", k)
	}
	assert.GreaterOrEqual(t, db.Stats().SlowQueries, int64(1))
	assert.Equal(t, int64(3), db.Stats().Queries)

	m := collect()
	slowC := m["perfkit.dbpool.slow_queries"].(metricdata.Sum[int64])
	assert.Equal(t, db.Stats().SlowQueries, slowC.DataPoints[0].Value)
	dur := m["db.client.operation.duration"].(metricdata.Histogram[float64])
	assert.Equal(t, uint64(3), dur.DataPoints[0].Count)
	assert.Contains(t, dur.DataPoints[0].Bounds, 1.0, "seconds buckets with a 1 s boundary")
	for _, name := range []string{"db.client.connection.count", "db.client.connection.max", "db.client.connection.idle.min",
		"db.client.connection.create_time", "db.client.connection.use_time"} {
		assert.Contains(t, m, name)
	}
	states := map[string]int64{}
	for _, dp := range m["db.client.connection.count"].(metricdata.Sum[int64]).DataPoints {
		st, _ := dp.Attributes.Value("db.client.connection.state")
		states[st.AsString()] = dp.Value
	}
	assert.Equal(t, map[string]int64{"idle": 5, "used": 0}, states)
}

func TestCountQueriesAcrossGoroutines(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, dbpool.Config{})
	ctx := context.Background()
	_, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
	require.NoError(t, err)

	cctx, n := dbpool.CountQueries(ctx)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				_, err := db.ExecContext(cctx, "INSERT INTO t (v) VALUES (?)", g*100+i) // 1
				assert.NoError(t, err)
				var v int
				assert.NoError(t, db.QueryRowContext(cctx, "SELECT count(*) FROM t").Scan(&v)) // 2
				rows, err := db.QueryContext(cctx, "SELECT id FROM t LIMIT 3")                 // 3
				if assert.NoError(t, err) {
					for rows.Next() {
					}
					assert.NoError(t, rows.Close())
				}
				tx, err := db.BeginTx(cctx, nil)
				if assert.NoError(t, err) {
					_, err = tx.ExecContext(cctx, "UPDATE t SET v = v + 1 WHERE id = 1") // 4
					assert.NoError(t, err)
					assert.NoError(t, tx.Commit())
				}
				st, err := db.PrepareContext(cctx, "SELECT v FROM t WHERE id = ?")
				if assert.NoError(t, err) {
					_ = st.QueryRowContext(cctx, 1).Scan(&v) // 5
					assert.NoError(t, st.Close())
				}
			}
		})
	}
	wg.Wait()
	_, err = db.ExecContext(ctx, "SELECT 1") // not counted: another context
	require.NoError(t, err)
	assert.Equal(t, int64(16*10*5), n.Load())
}

func TestLeakDetection(t *testing.T) {
	t.Parallel()
	log, recs := newLogger()
	db := openSQLite(t, dbpool.Config{LeakThreshold: 50 * time.Millisecond, MaintainInterval: 10 * time.Millisecond, Logger: log})
	ctx := context.Background()
	c, err := db.Conn(ctx)
	require.NoError(t, err)
	_, err = c.ExecContext(ctx, "SELECT 1")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return len(recs.find("dbpool: connection held longer than the leak threshold")) == 1
	}, 2*time.Second, 5*time.Millisecond)
	got := recs.find("dbpool: connection held longer than the leak threshold")[0]
	assert.Contains(t, got["stack"], "TestLeakDetection", "the acquiring stack is logged")
	assert.Equal(t, int64(1), db.Stats().Leaks)
	require.NoError(t, c.Close())
	time.Sleep(60 * time.Millisecond) // a few maintainer ticks
	assert.Len(t, recs.find("dbpool: connection held longer than the leak threshold"), 1, "a released connection is not reported")
}
