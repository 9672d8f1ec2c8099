package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOrdersPageQueryCount proves the orders page has no N+1: a page of 1
// order and a page of 100 orders (each with 1–8 items) cost the same one
// query, and a single order one query too.
func TestOrdersPageQueryCount(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, dialect)
			cfg.DemoData = false
			a := startApp(t, cfg).admin()
			require.NoError(t, a.st.Seed(context.Background(), store.SeedOptions{Restaurants: 1, Items: 10, Orders: 120}))
			var rid int64
			require.NoError(t, a.db.QueryRow("SELECT id FROM restaurants").Scan(&rid))

			for _, limit := range []int{1, 100} {
				var page store.OrderPage
				a.queries.Store(0)
				a.doJSON("GET", fmt.Sprintf("/restaurants/%d/orders?limit=%d", rid, limit), "", http.StatusOK, &page)
				n := a.queries.Load()
				require.Len(t, page.Orders, limit)
				items := 0
				for _, o := range page.Orders {
					items += len(o.Items)
				}
				assert.Positive(t, items)
				assert.LessOrEqual(t, n, int64(2), "page of %d orders (%d items) took %d queries", limit, items, n)
			}
			a.queries.Store(0)
			a.doJSON("GET", "/orders/1", "", http.StatusOK, nil)
			assert.Equal(t, int64(1), a.queries.Load(), "one order with its items is one query")
		})
	}
}

// TestCreateOrderQueryCount: placing an order costs 3 statements plus one
// stock update per distinct item — no separate restaurant check, no read
// after the inserts — and the order it returns is the one stored.
func TestCreateOrderQueryCount(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			var o store.Order
			a.queries.Store(0)
			a.doJSON("POST", "/orders", `{"restaurant_id":1,"customer_name":"Q","items":[{"menu_item_id":3,"quantity":1},{"menu_item_id":1,"quantity":2},{"menu_item_id":3,"quantity":1}]}`, http.StatusCreated, &o)
			assert.Equal(t, int64(3+2), a.queries.Load(), "menu, 2 stock updates, order, items")
			require.Len(t, o.Items, 2)
			assert.Less(t, o.Items[0].ID, o.Items[1].ID, "items in id order")
			var got store.Order
			a.doJSON("GET", fmt.Sprintf("/orders/%d", o.ID), "", http.StatusOK, &got)
			assert.Equal(t, got, o)
		})
	}
}
