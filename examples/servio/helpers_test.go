package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/require"
)

// dialects are the databases every route test runs on.
var dialects = []string{"sqlite", "postgres"}

// testApp is a servio App behind an httptest server, with a count of the
// SQL statements its pool ran.
type testApp struct {
	*App
	t       testing.TB
	URL     string
	queries *atomic.Int64
}

// testConfig is the configuration of a test instance: embedded defaults,
// data in a temp dir, a fast simulated LLM, PostgreSQL in its own schema
// when dialect is "postgres".
func testConfig(t testing.TB, dialect string) Config {
	t.Helper()
	cfg, err := parseConfig("servio-test", nil, func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	cfg.DataDir = t.TempDir()
	cfg.SimLLMLatency = 0
	cfg.AuthSecret = "test-secret"
	if dialect == "postgres" {
		cfg.DatabaseURL = testenv.PostgresDSN(t)
	}
	return cfg
}

func startApp(t testing.TB, cfg Config) *testApp {
	t.Helper()
	var n atomic.Int64
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := newApp(ctx, cfg, log, appOptions{openDB: countingOpen(&n), passwordIterations: 1000})
	require.NoError(t, err)
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, app.Close())
	})
	return &testApp{App: app, t: t, URL: srv.URL, queries: &n}
}

func newTestApp(t testing.TB, dialect string) *testApp {
	t.Helper()
	return startApp(t, testConfig(t, dialect))
}

// do sends a request with an optional JSON body and returns the status and
// the body.
func (a *testApp) do(method, path, body string) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, r)
	require.NoError(a.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, b
}

// doJSON is do that also decodes the body into out and requires want.
func (a *testApp) doJSON(method, path, body string, want int, out any) {
	a.t.Helper()
	code, b := a.do(method, path, body)
	require.Equal(a.t, want, code, "%s %s: body %s", method, path, b)
	if out != nil {
		require.NoError(a.t, json.Unmarshal(b, out), "%s %s: body %s", method, path, b)
	}
}

// countingOpen opens the pool like openDBStd through a driver wrapper that
// counts every statement sent to the database.
func countingOpen(n *atomic.Int64) openDBFunc {
	return func(ctx context.Context, drv, dsn string) (*sql.DB, error) {
		probe, err := sql.Open(drv, dsn)
		if err != nil {
			return nil, err
		}
		d := probe.Driver()
		_ = probe.Close()
		db := sql.OpenDB(countingConnector{d: d, dsn: dsn, n: n})
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(5)
		return db, db.PingContext(ctx)
	}
}

type countingConnector struct {
	d   driver.Driver
	dsn string
	n   *atomic.Int64
}

func (c countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.d.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: c.n}, nil
}

func (c countingConnector) Driver() driver.Driver { return c.d }

// countingConn counts QueryContext and ExecContext calls; both drivers
// implement the context interfaces, so every statement passes here.
type countingConn struct {
	driver.Conn
	n *atomic.Int64
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.n.Add(1)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.n.Add(1)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}
