package main

import (
	"net/http"
	"testing"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBaselineMode: with -baseline every route still works, but reads are
// not cached (each menu read is a query), order pages are loaded N+1, no
// rate limit applies, and assistant answers are not cached.
func TestBaselineMode(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.Baseline = true
	a := startApp(t, cfg).admin()
	a.queries.Store(0)
	for range 3 {
		a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
	}
	assert.Equal(t, int64(3), a.queries.Load(), "baseline: every menu read goes to the database")
	var page store.OrderPage
	a.queries.Store(0)
	a.doJSON("GET", "/restaurants/1/orders?limit=3", "", http.StatusOK, &page)
	require.Len(t, page.Orders, 3)
	assert.Equal(t, int64(1+3), a.queries.Load(), "baseline: an orders page loads its items one query per order (N+1)")
	assert.NotEmpty(t, page.Orders[0].Items)
	for range 7 {
		a.doJSON("POST", "/auth/login", `{"email":"staff@servio.dev","password":"x"}`, http.StatusUnauthorized, nil)
	}
	for range 2 {
		a.doJSON("POST", "/assistant/query", `{"question":"same"}`, http.StatusOK, nil)
	}
	assert.Equal(t, int64(2), a.sim.calls.Load(), "baseline: answers are not cached")
	for _, p := range []string{"/health/detailed", "/health/metrics"} {
		code, body := a.do("GET", p, "")
		assert.Equal(t, http.StatusOK, code, "%s: %s", p, body)
	}
}

// TestReadsCached is the contrast: with perfkit on, menus and single orders
// are read once and then served from the cache.
func TestReadsCached(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	a.queries.Store(0)
	for range 3 {
		a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
		a.doJSON("GET", "/orders/1", "", http.StatusOK, nil)
	}
	assert.Equal(t, int64(2), a.queries.Load(), "one query for the menu, one for the order, then cache hits")
}

// TestSQLitePragmas: the embedded database runs with WAL, a busy timeout
// and foreign keys on every pooled connection.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	var fk, busy int
	var mode string
	require.NoError(t, a.db.QueryRow("PRAGMA foreign_keys").Scan(&fk))
	require.NoError(t, a.db.QueryRow("PRAGMA busy_timeout").Scan(&busy))
	require.NoError(t, a.db.QueryRow("PRAGMA journal_mode").Scan(&mode))
	assert.Equal(t, 1, fk)
	assert.Positive(t, busy)
	assert.Equal(t, "wal", mode)
}
