package faults

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPostgresRestartUnderLoad: PostgreSQL stops while reads and order
// writes run. While it is down requests fail fast (503 well within the 2 s
// connect timeout, never hanging) and /health/ready says not ready; when it
// is back the same process serves again, and no order was half-written.
// The staff reads go out under one signed-in user, far beyond the API
// tier's 60 a minute per user, so rate limits are off here.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	a := startServio(t, "DATABASE_URL="+pg.DSN(), "RATE_LIMIT=false")
	_, b := a.status("GET", "/restaurants/1/menu", nil)
	items := jsonOf[menu](t, b).Items
	require.NotEmpty(t, items)

	var stopWrites atomic.Bool
	var writes sync.WaitGroup
	var created, failedFast, slow atomic.Int64
	for w := range 4 {
		writes.Go(func() {
			for i := 0; !stopWrites.Load(); i++ {
				order := map[string]any{"restaurant_id": 1, "customer_name": fmt.Sprintf("w%d-%d", w, i),
					"items": []map[string]any{{"menu_item_id": items[0].ID, "quantity": 1}, {"menu_item_id": items[len(items)-1].ID, "quantity": 1}}}
				st, _, lat := a.do("POST", "/orders", order)
				switch {
				case st == 201 || st == 200:
					created.Add(1)
				case st == 503:
					failedFast.Add(1)
				}
				if lat > 3*time.Second {
					slow.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	stop := background(50, []*instance{a}, []string{"/restaurants/1/orders?limit=5", "/restaurants/1/inventory/low-stock"})
	time.Sleep(time.Second)

	pg.Stop()
	downAt := time.Now()
	time.Sleep(500 * time.Millisecond)
	// The database check runs every second in the background: /health/ready
	// follows within about a second (and answers fast meanwhile).
	var st int
	var body []byte
	var lat time.Duration
	assert.Eventually(t, func() bool {
		st, body, lat = a.do("GET", "/health/ready", nil)
		return st == 503
	}, 2*time.Second, 100*time.Millisecond, "/health/ready while PostgreSQL is down")
	assert.Equal(t, 503, st, "/health/ready while PostgreSQL is down: %s", body)
	assert.Less(t, lat, 3*time.Second, "/health/ready must answer fast while PostgreSQL is down")
	time.Sleep(2000 * time.Millisecond)
	upAt := time.Now()
	pg.Start()

	require.Eventually(t, func() bool {
		st, _ := a.status("GET", "/health/ready", nil)
		return st == 200
	}, 15*time.Second, 100*time.Millisecond, "service must become ready again without a restart")
	require.Eventually(t, func() bool {
		st, _ := a.status("GET", "/restaurants/1/orders?limit=5", nil)
		return st == 200
	}, 10*time.Second, 100*time.Millisecond, "queries must succeed again after PostgreSQL returns")
	stopWrites.Store(true)
	writes.Wait()
	res := stop()

	during := res.between(downAt.Add(time.Second), upAt)
	require.NotEmpty(t, during)
	statuses := map[int]int{}
	var worst time.Duration
	for _, s := range during {
		statuses[s.status]++
		worst = max(worst, s.latency)
	}
	t.Logf("while down: statuses %v, slowest %v; orders created %d, write 503s %d", statuses, worst, created.Load(), failedFast.Load())
	assert.Equal(t, len(during), statuses[503], "every read while PostgreSQL is down must be a 503, got %v", statuses)
	assert.Less(t, worst, 2500*time.Millisecond, "requests must fail within the 2 s connect timeout, not hang")
	assert.Zero(t, slow.Load(), "no write may hang while PostgreSQL is down")
	assert.Positive(t, failedFast.Load(), "writes during the outage must get 503")
	// Repeated identical failures are sampled: the outage's hundreds of
	// 503s write a few lines, not one each.
	warns := strings.Count(a.logs.String(), `"msg":"database unavailable"`)
	t.Logf("%d 'database unavailable' log lines for %d failed requests", warns, failedFast.Load()+int64(statuses[503]))
	assert.Less(t, warns, 60, "a database outage must not write a line per failed request")

	// nothing half-written: every order has its items and its total matches
	db, err := sql.Open("pgx", pg.DSN())
	require.NoError(t, err)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var orphans, mismatched int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)`).Scan(&orphans))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM orders o WHERE o.total_cents <> (SELECT coalesce(sum(i.quantity * i.unit_price_cents), 0) FROM order_items i WHERE i.order_id = o.id)`).Scan(&mismatched))
	assert.Zero(t, orphans, "orders without items: a transaction was half-written")
	assert.Zero(t, mismatched, "orders whose total does not match their items")
}
