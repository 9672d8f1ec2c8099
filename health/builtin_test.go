package health

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// names returns the measurement names of res.
func names(res Result) []string {
	var out []string
	for _, m := range res.Measurements {
		out = append(out, m.Name)
	}
	return out
}

func TestSQLPostgres(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	db.SetMaxOpenConns(4)
	res := SQL(db)(context.Background())
	require.NoError(t, res.Err)
	assert.Equal(t, "datastore", res.ComponentType)
	assert.Equal(t, []string{"responseTime", "openConnections", "inUseConnections", "idleConnections", "maxOpenConnections", "waitCount", "waitDuration"}, names(res))
	assert.Equal(t, 1, res.Measurements[1].Value, "the ping reused one pooled connection")
	assert.Equal(t, 4, res.Measurements[4].Value)
	res = SQL(db)(context.Background())
	assert.Equal(t, 1, res.Measurements[1].Value, "no connection opened per call")
}

func TestSQLSaturatedPoolTimesOut(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	c := newTest(t, Config{Checks: []Check{{Name: "db", Critical: true, Timeout: 50 * time.Millisecond, Run: SQL(db)}}})
	rep := c.Check(context.Background())
	assert.Equal(t, StatusFail, rep.Status, "a pool with no free connection cannot serve")
	assert.Regexp(t, `timed out|deadline exceeded`, rep.Checks[0].Output)
}

func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	db, err := sql.Open("pgx", pg.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	clk := newClock()
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{{Name: "db", Critical: true, Timeout: 2 * time.Second, Run: SQL(db)}}})
	h := c.Handler(HandlerConfig{})
	require.Equal(t, http.StatusOK, get(h, "/health/ready").Code, "ready while PostgreSQL runs")

	pg.Stop()
	clk.Add(time.Hour)
	assert.Equal(t, http.StatusServiceUnavailable, get(h, "/health/ready").Code, "PostgreSQL down: not ready")
	assert.Equal(t, http.StatusServiceUnavailable, get(h, "/health").Code)
	assert.Equal(t, http.StatusOK, get(h, "/health/live").Code, "liveness does not depend on the database")

	pg.Start()
	clk.Add(time.Hour)
	assert.Equal(t, http.StatusOK, get(h, "/health/ready").Code, "ready again once PostgreSQL is back")
}

func TestSQLClosedAndNil(t *testing.T) {
	t.Parallel()
	db := testenv.SQLite(t)
	require.NoError(t, SQL(db)(context.Background()).Err)
	require.NoError(t, db.Close())
	assert.ErrorContains(t, SQL(db)(context.Background()).Err, "closed")
	assert.Error(t, SQL((*sql.DB)(nil))(context.Background()).Err)
}

func TestRedisShared(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	require.NoError(t, rdb.Set(context.Background(), prefix+"k", "v", time.Minute).Err())
	require.NoError(t, rdb.Get(context.Background(), prefix+"k").Err())
	res := Redis(rdb)(context.Background())
	require.NoError(t, res.Err)
	assert.Equal(t, []string{"responseTime", "usedMemory", "hitRate"}, names(res))
	assert.Positive(t, res.Measurements[1].Value)
	assert.Equal(t, "percent", res.Measurements[2].Unit)
}

func TestRedisStopped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		critical bool
		code     int
		status   Status
	}{
		{true, http.StatusServiceUnavailable, StatusFail},
		{false, http.StatusOK, StatusWarn},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("critical=", tt.critical), func(t *testing.T) {
			t.Parallel()
			srv := testenv.StartRedis(t)
			opt, err := perfkit.RedisOptions("redis://" + srv.Addr)
			require.NoError(t, err)
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { _ = rdb.Close() })
			clk := newClock()
			c := newTest(t, Config{Now: clk.Now, Checks: []Check{
				{Name: "db", Critical: true, Run: fixed(Result{})},
				{Name: "redis", Critical: tt.critical, Run: Redis(rdb)},
			}})
			h := c.Handler(HandlerConfig{Authorizer: AllowAll})
			require.Equal(t, http.StatusOK, get(h, "/health/ready").Code, "ready while Redis runs")

			srv.Kill()
			clk.Add(time.Hour)
			w := get(h, "/health/ready?verbose")
			assert.Equal(t, tt.code, w.Code)
			var body struct {
				Status Status
				Checks map[string][]jsonCheck
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
			assert.Equal(t, tt.status, body.Status)
			require.Len(t, body.Checks["redis:responseTime"], 1, "checks: %v", body.Checks)
			assert.Equal(t, StatusFail, body.Checks["redis:responseTime"][0].Status, "the Redis check itself fails")
			assert.Contains(t, body.Checks["redis:responseTime"][0].Output, "refused")
			assert.Equal(t, http.StatusOK, get(h, "/health/ready?exclude=redis").Code)
		})
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	res := Redis(cl.Client())(context.Background())
	require.NoError(t, res.Err)
	assert.Equal(t, []string{"responseTime", "usedMemory"}, names(res)[:2])
	assert.Greater(t, res.Measurements[1].Value, uint64(3<<20), "used memory summed over three masters")
	cl.Servers[1].Kill()
	res = Redis(cl.Client())(context.Background())
	assert.ErrorContains(t, res.Err, cl.Servers[1].Addr, "a dead master fails the check and is named")
}

func TestRedisNil(t *testing.T) {
	t.Parallel()
	assert.Error(t, Redis(nil)(context.Background()).Err)
}

func TestParseInfo(t *testing.T) {
	t.Parallel()
	info := "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Stats\r\nkeyspace_hits:30\r\nkeyspace_misses:10\r\nbad line\r\nkeyspace_misses_x:nope\r\n"
	used, hits, misses := parseInfo(info)
	assert.Equal(t, []uint64{1048576, 30, 10}, []uint64{used, hits, misses})
}

func FuzzParseInfo(f *testing.F) {
	f.Add("used_memory:1\r\nkeyspace_hits:2\r\nkeyspace_misses:3\r\n")
	f.Add("used_memory:-1\nkeyspace_hits:\n:::\n")
	f.Fuzz(func(t *testing.T, s string) {
		used, hits, misses := parseInfo(s)
		if !strings.Contains(s, "used_memory:") && used != 0 || !strings.Contains(s, "keyspace_hits:") && hits != 0 || !strings.Contains(s, "keyspace_misses:") && misses != 0 {
			t.Fatalf("value from nowhere: %d %d %d", used, hits, misses)
		}
	})
}

func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("fine"))
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		default:
			http.Error(w, "boom", http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	secretURL := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1)
	tests := []struct {
		name  string
		check CheckFunc
		err   string
	}{
		{"2xx", HTTP(client, srv.URL+"/ok", 0), ""},
		{"exact", HTTP(client, srv.URL+"/teapot", http.StatusTeapot), ""},
		{"wrong status", HTTP(client, secretURL+"/bad", http.StatusOK), "status 502, want 200"},
		{"not 2xx", HTTP(client, srv.URL+"/teapot", 0), "status 418, want 2xx"},
		{"bad url", HTTP(nil, "http://[::1", 0), "bad URL"},
		{"refused", HTTP(nil, "http://user:hunter2@127.0.0.1:1/", 0), "refused"},
	}
	for _, tt := range tests {
		res := tt.check(context.Background())
		out := Redact(fmt.Sprint(res.Err))
		assert.Equal(t, tt.err == "", res.Err == nil, "%s: %v", tt.name, res.Err)
		assert.Contains(t, out, tt.err, tt.name)
		assert.NotContains(t, out, "hunter2", tt.name)
		assert.Equal(t, "component", res.ComponentType, tt.name)
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	res := Memory(MemoryLimits{})(context.Background())
	assert.Equal(t, StatusPass, res.Status)
	assert.Equal(t, []string{"heap", "runtimeTotal", "goroutines", "rss"}, names(res), "rss where /proc exists (linux CI)")
	assert.Positive(t, res.Measurements[0].Value)
	assert.Positive(t, res.Measurements[3].Value)

	res = Memory(MemoryLimits{WarnHeap: 1})(context.Background())
	assert.Equal(t, StatusWarn, res.Status)
	res = Memory(MemoryLimits{WarnHeap: 1, FailRSS: 1})(context.Background())
	assert.Equal(t, StatusFail, res.Status)
	assert.Contains(t, res.Output, "rss")
}

func TestParseStatm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1000 250 100 1 0 300 0\n", 250 * 4096, true},
		{"1000", 0, false},
		{"1000 x", 0, false},
		{"1 99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseStatm(tt.in, 4096)
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func TestCPU(t *testing.T) {
	t.Parallel()
	// Burn some CPU between creating each check and running it, so there is
	// something to see: a check run at once can measure 0.00%.
	burn := func() {
		deadline := time.Now().Add(20 * time.Millisecond)
		for time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
	check := CPU(CPULimits{})
	limited := CPU(CPULimits{FailPercent: 0.0001, WarnPercent: 0.00001})
	burn()
	res := check(context.Background())
	require.Equal(t, StatusPass, res.Status, res.Output)
	require.Equal(t, []string{"utilization"}, names(res))
	pct := res.Measurements[0].Value.(float64)
	assert.Greater(t, pct, 0.0)
	assert.LessOrEqual(t, pct, 100.0)
	assert.Equal(t, StatusFail, limited(context.Background()).Status)
}
