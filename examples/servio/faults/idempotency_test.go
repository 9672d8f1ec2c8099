package faults

import (
	"context"
	"database/sql"
	"encoding/json"
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

// retryable reports whether a client should send the same keyed request
// again: no answer (a reset or refused connection), a 503, or a 409 saying
// the first request with the key is still in flight.
func retryable(status int, body []byte) bool {
	return status == 0 || status == 503 || (status == 409 && strings.Contains(string(body), "in flight"))
}

// placeKeyed places one order under key, retrying with the same key and
// body until it gets a final answer or the deadline passes. It returns
// the final status, the order id of a 201, and how many attempts it took.
func placeKeyed(in *instance, key string, order map[string]any, deadline time.Time) (status int, id int64, attempts int) {
	for {
		attempts++
		st, b, _ := in.do("POST", "/orders", order, "Idempotency-Key", key)
		if st == 201 {
			var o struct {
				ID           int64  `json:"id"`
				CustomerName string `json:"customer_name"`
			}
			_ = json.Unmarshal(b, &o)
			return st, o.ID, attempts
		}
		if !retryable(st, b) || time.Now().After(deadline) {
			return st, 0, attempts
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresCrashIdempotentOrders: PostgreSQL is stopped the way
// `pg_ctl stop -m immediate` does it (SIGQUIT: commits whose reply was
// in the wire are lost to the client), twice, under order load; every
// client retries 503s, connection errors and in-flight 409s with the same
// Idempotency-Key and body. Afterwards, from the database's side: every
// committed order was acknowledged to its client exactly once, with its
// id, and no order was written twice.
func TestPostgresCrashIdempotentOrders(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	// synchronous_commit on for servio's sessions (the private server runs
	// with it off for speed): a commit acknowledged before a crash must
	// survive it, or no client-side rule could hold.
	a := startServio(t, "DATABASE_URL="+pg.DSN()+"&synchronous_commit=on", "RATE_LIMIT=false")
	st, b := a.status("POST", "/restaurants/1/menu", map[string]any{"name": "Crash-test espresso", "price_cents": 100, "stock": 1_000_000})
	require.Equal(t, 201, st, "%s", b)
	item := jsonOf[menuItem](t, b).ID

	const workers = 8
	type ack struct {
		id       int64
		attempts int
	}
	var (
		mu       sync.Mutex
		acks     = map[string]ack{}
		failed   = map[string]int{}
		stop     atomic.Bool
		wg       sync.WaitGroup
		attempts atomic.Int64
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("crash-%d-%d", w, i)
				order := map[string]any{"restaurant_id": 1, "customer_name": key,
					"items": []map[string]any{{"menu_item_id": item, "quantity": 1}}}
				st, id, n := placeKeyed(a, key, order, time.Now().Add(60*time.Second))
				attempts.Add(int64(n))
				mu.Lock()
				if st == 201 {
					acks[key] = ack{id, n}
				} else {
					failed[key] = st
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	for range 2 {
		pg.StopImmediate()
		time.Sleep(1500 * time.Millisecond)
		pg.Start()
		time.Sleep(1500 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	db, err := sql.Open("pgx", pg.DSN())
	require.NoError(t, err)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT customer_name, id FROM orders WHERE customer_name LIKE 'crash-%'")
	require.NoError(t, err)
	committed := map[string][]int64{}
	for rows.Next() {
		var key string
		var id int64
		require.NoError(t, rows.Scan(&key, &id))
		committed[key] = append(committed[key], id)
	}
	require.NoError(t, rows.Err())
	rows.Close()

	var retried int
	for key, a := range acks {
		if a.attempts > 1 {
			retried++
		}
		assert.Equal(t, []int64{a.id}, committed[key], "order %s: acknowledged as %d, committed as %v", key, a.id, committed[key])
	}
	for key, ids := range committed {
		assert.Len(t, ids, 1, "order %s written %d times: %v", key, len(ids), ids)
		_, acked := acks[key]
		assert.True(t, acked, "order %s (%v) committed but never acknowledged to its client (final status %d)", key, ids, failed[key])
	}
	t.Logf("PostgreSQL stopped -m immediate twice under load: %d orders acknowledged, %d committed, %d requests, %d orders acknowledged only after retries; final failures %v",
		len(acks), len(committed), attempts.Load(), retried, failed)
	assert.Positive(t, retried, "the crashes must have made clients retry")
	assert.Empty(t, failed, "every intended order ends acknowledged within the deadline")
}
