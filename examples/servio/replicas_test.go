package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/internal/testenv"
)

// startReplicated starts a private PostgreSQL primary and streaming
// replica and servio on them with DATABASE_REPLICA_URLS; the demo data is
// on the replica and reads reach it when it returns. Rate limits are off.
func startReplicated(t *testing.T) (*testApp, *testenv.PostgresServer, *testenv.PostgresServer) {
	t.Helper()
	primary := testenv.StartPostgres(t)
	replica := testenv.StartPostgresReplica(t, primary)
	cfg := testConfig(t, "sqlite")
	cfg.DatabaseURL, cfg.DatabaseReplicaURLs = primary.DSN(), replica.DSN()
	cfg.RateLimit = false // the tests read in loops past the API tier's 60 a minute
	a := startApp(t, cfg)
	require.NotNil(t, a.replicas)
	replica.WaitReplayed(primary, 30*time.Second)
	// Reads wait for the demo data's writes until a check has seen the
	// replica replay them.
	require.Eventually(t, func() bool {
		before := replicaReads(a)
		require.NoError(t, a.replicas.Read(t.Context(), func(*dbpool.DB) error { return nil }))
		return replicaReads(a) > before
	}, 10*time.Second, 10*time.Millisecond, "no read reached the caught-up replica")
	return a, primary, replica
}

// replicaReads is the number of reads servio's cluster routed to the replica.
func replicaReads(a *testApp) int64 { return a.replicas.ReplicaStats()[0].Reads }

// Menu, low-stock, order-history and export reads go to the replica; order
// placement and status changes stay on the primary (the replica, read-only,
// would refuse them).
func TestReplicasRouteReads(t *testing.T) {
	t.Parallel()
	a, _, _ := startReplicated(t)
	staff := a.as(a.tokenFor("staff2@servio.dev"))
	for _, path := range []string{"/restaurants/2/menu", "/restaurants/2/inventory/low-stock", "/restaurants/2/orders"} {
		// A read goes to the primary while the replica is behind: a menu
		// read must see every write committed on the primary before it
		// (dbpool.Cluster.Latest), and River writes there in the
		// background, so on a busy machine the replica can be a write
		// behind when the read starts (CI of 6 Dec 2026). Such a read
		// filled the cache from the primary: drop the menu and ask again.
		assert.Eventually(t, func() bool {
			before := replicaReads(a)
			staff.doJSON("GET", path, "", http.StatusOK, nil)
			n := replicaReads(a) - before
			assert.LessOrEqual(t, n, int64(1), "GET %s read from the replica more than once", path)
			if n == 1 {
				return true
			}
			a.svc.invalidate(t.Context(), menuKey(2))
			return false
		}, 10*time.Second, 20*time.Millisecond, "GET %s did not read from the replica", path)
	}
	// The export reads each keyset page through the replica router.
	before := replicaReads(a)
	code, body := staff.do("GET", "/restaurants/2/orders/export", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Greater(t, replicaReads(a), before, "the export did not read from the replica")
	before = replicaReads(a)
	var o store.Order
	a.doJSON("POST", "/orders", `{"restaurant_id":2,"customer_name":"Zoe","items":[{"menu_item_id":`+fmt.Sprint(firstMenuItem(t, a, 2))+`,"quantity":1}]}`, http.StatusCreated, &o)
	staff.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"preparing"}`, http.StatusOK, nil)
	assert.Equal(t, before, replicaReads(a), "a write went through the replica router")
	// The staff member's next order-history read sees their change at once.
	var page store.OrderPage
	staff.doJSON("GET", "/restaurants/2/orders", "", http.StatusOK, &page)
	require.NotEmpty(t, page.Orders)
	assert.Equal(t, o.ID, page.Orders[0].ID)
	assert.Equal(t, "preparing", page.Orders[0].Status)
}

// firstMenuItem returns the id of an available item of restaurant rid.
func firstMenuItem(t *testing.T, a *testApp, rid int64) int64 {
	t.Helper()
	var m menuResponse
	a.doJSON("GET", fmt.Sprintf("/restaurants/%d/menu", rid), "", http.StatusOK, &m)
	require.NotEmpty(t, m.Items)
	return m.Items[0].ID
}

// A manager's menu edit is visible at once, to them and (through the
// menu's own session and the cache invalidation) to everyone, although the
// replica, still in rotation, has not replayed it yet: each iteration
// checks the replica directly and counts the times it still held the old
// price, so the test shows the rule held while a replica read would have
// been stale.
func TestReplicasManagerSeesOwnMenuEdit(t *testing.T) {
	t.Parallel()
	a, _, replica := startReplicated(t)
	manager := a.as(a.tokenFor("manager@servio.dev"))
	rdb, err := sql.Open("pgx", replica.DSN())
	require.NoError(t, err)
	defer rdb.Close()
	item := firstMenuItem(t, a, 1)
	stale := 0
	for i := range 30 {
		price := int64(1000 + i)
		manager.doJSON("PATCH", fmt.Sprintf("/menu-items/%d", item), fmt.Sprintf(`{"price_cents":%d}`, price), http.StatusOK, nil)
		var onReplica int64
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		require.NoError(t, rdb.QueryRowContext(ctx, "SELECT price_cents FROM menu_items WHERE id = $1", item).Scan(&onReplica))
		cancel()
		if onReplica != price {
			stale++
		}
		for _, who := range []*testApp{manager, a} {
			var m menuResponse
			who.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &m)
			var got int64
			for _, it := range m.Items {
				if it.ID == item {
					got = it.PriceCents
				}
			}
			require.Equal(t, price, got, "iteration %d: a menu read after the edit returned the old price", i)
		}
	}
	t.Logf("the replica still held the old price in %d of 30 iterations", stale)
	assert.Positive(t, stale, "the replica was never behind: the test did not exercise read-your-writes")
	assert.True(t, a.replicas.ReplicaStats()[0].Usable, "the replica left rotation: read-your-writes was not what kept reads fresh")
}

// DATABASE_REPLICA_URLS needs PostgreSQL: with SQLite servio refuses to start.
func TestReplicasNeedPostgres(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.DatabaseReplicaURLs = "postgres://127.0.0.1:1/x"
	_, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), testAppOptions)
	require.ErrorContains(t, err, "DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
}

// Killing the replica under read load fails no request: reads it fails run
// again on the primary, the checker takes it out, and /health/detailed
// says so (a warning: the service still serves).
func TestReplicasKilledUnderLoad(t *testing.T) {
	t.Parallel()
	a, _, replica := startReplicated(t)
	staff := a.as(a.tokenFor("staff@servio.dev"))
	paths := []string{"/restaurants/1/inventory/low-stock", "/restaurants/1/orders"}
	for i := range 20 {
		staff.doJSON("GET", paths[i%2], "", http.StatusOK, nil)
	}
	require.Positive(t, replicaReads(a))
	replica.StopImmediate()
	for i := range 200 {
		staff.doJSON("GET", paths[i%2], "", http.StatusOK, nil)
	}
	require.Eventually(t, func() bool { return !a.replicas.ReplicaStats()[0].Usable }, 10*time.Second, 10*time.Millisecond)
	code, body := a.do("GET", "/health/detailed", "")
	assert.Equal(t, http.StatusOK, code, "a dead replica is not a failed service: %s", body)
	assert.Contains(t, string(body), "out of rotation")
}

// DATABASE_REPLICA_URLS is read from the environment, the flag wins, and
// -h shows the URLs' passwords redacted.
func TestReplicaURLsConfig(t *testing.T) {
	t.Parallel()
	env := func(k string) string {
		if k == "DATABASE_REPLICA_URLS" {
			return "postgres://u:secret@h1/db, postgres://u:pw2@h2/db"
		}
		return ""
	}
	cfg, err := parseConfig("servio", nil, env, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"postgres://u:secret@h1/db", "postgres://u:pw2@h2/db"}, splitURLs(cfg.DatabaseReplicaURLs))
	cfg, err = parseConfig("servio", []string{"-database-replica-urls", "postgres://h3/db"}, env, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"postgres://h3/db"}, splitURLs(cfg.DatabaseReplicaURLs))
	var help strings.Builder
	_, err = parseConfig("servio", []string{"-h"}, env, &help, nil)
	require.Error(t, err)
	assert.Contains(t, help.String(), "postgres://u:xxxxx@h1/db,postgres://u:xxxxx@h2/db")
	assert.NotContains(t, help.String(), "secret")
}

// Two instances sharing Redis and the primary + replica: after a menu edit
// on one, the other serves the new menu as soon as the invalidation
// arrives, and neither fills the shared cache from a replica that has not
// replayed the edit yet (which would serve the old menu to everyone for the
// cache's TTL).
func TestReplicasMenuEditAcrossInstances(t *testing.T) {
	t.Parallel()
	primary := testenv.StartPostgres(t)
	replica := testenv.StartPostgresReplica(t, primary)
	_, prefix := testenv.Redis(t)
	cfg := testConfig(t, "sqlite")
	cfg.DatabaseURL, cfg.DatabaseReplicaURLs = primary.DSN(), replica.DSN()
	cfg.RedisURL, cfg.RedisPrefix, cfg.RateLimit = testenv.RedisURL(), prefix, false
	a := startApp(t, cfg)
	cfg.DataDir = t.TempDir()
	b := startApp(t, cfg)
	replica.WaitReplayed(primary, 30*time.Second)
	manager := a.as(a.tokenFor("manager@servio.dev"))
	item := firstMenuItem(t, a, 1)
	price := func(who *testApp) int64 {
		var m menuResponse
		who.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &m)
		for _, it := range m.Items {
			if it.ID == item {
				return it.PriceCents
			}
		}
		return -1
	}
	for i := range 15 {
		want := int64(2000 + i)
		price(b) // B holds the old menu in its L1
		manager.doJSON("PATCH", fmt.Sprintf("/menu-items/%d", item), fmt.Sprintf(`{"price_cents":%d}`, want), http.StatusOK, nil)
		// Pub/sub delivery takes milliseconds; 10 s allows for a loaded
		// machine, far below the 60 s a stale cache fill would last.
		require.Eventually(t, func() bool { return price(b) == want }, 10*time.Second, 2*time.Millisecond,
			"iteration %d: instance B kept serving an old price", i)
		require.Equal(t, want, price(a), "iteration %d: instance A served an old price", i)
	}
	t.Logf("replica reads: A %d, B %d; %+v", replicaReads(a), replicaReads(b), b.replicas.ReplicaStats()[0])
}
